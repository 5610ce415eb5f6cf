using System.Diagnostics;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;
using SharpBlock.Testing;
using Xunit.Abstractions;

namespace SharpBlock.Interop.Tests.Formats;

/// <summary>
/// The 026-style matrix for the other writable formats that raise blkdebug events in QEMU (qed, vmdk, qcow):
/// for each event the format raises, a blkdebug filter under the image fails the request after it with EIO or
/// ENOSPC, once or always, while a guest writes over a backing file, reads and flushes. Each event must fire
/// (an always-failing rule on it breaks a request), qemu-img check must find no corruption where it can check
/// the format, and qemu-io must read back every write a later flush acknowledged.
/// </summary>
public class FormatErrorInjectionTests(ITestOutputHelper output)
{
    private const long Size = 8 << 20;

    public static TheoryData<string> Formats => ["qed", "vmdk", "qcow"];

    private static BlkdebugEvent[] EventsOf(string format) => format switch
    {
        "qed" =>
        [
            BlkdebugEvent.L1Update, BlkdebugEvent.L2Load, BlkdebugEvent.L2Update, BlkdebugEvent.ReadAio, BlkdebugEvent.ReadBackingAio,
            BlkdebugEvent.WriteAio, BlkdebugEvent.CowRead, BlkdebugEvent.CowWrite, BlkdebugEvent.FlushToOs, BlkdebugEvent.FlushToDisk,
        ],
        "vmdk" =>
        [
            BlkdebugEvent.L2Load, BlkdebugEvent.L2Update, BlkdebugEvent.ReadAio, BlkdebugEvent.WriteAio, BlkdebugEvent.CowRead,
            BlkdebugEvent.CowWrite, BlkdebugEvent.FlushToOs, BlkdebugEvent.FlushToDisk,
        ],
        _ =>
        [
            BlkdebugEvent.L1Update, BlkdebugEvent.L2Load, BlkdebugEvent.L2AllocWrite, BlkdebugEvent.L2Update, BlkdebugEvent.ReadAio,
            BlkdebugEvent.ReadBackingAio, BlkdebugEvent.WriteAio, BlkdebugEvent.CowRead, BlkdebugEvent.CowWrite,
            BlkdebugEvent.FlushToOs, BlkdebugEvent.FlushToDisk,
        ],
    };

    [Theory]
    [MemberData(nameof(Formats))]
    public async Task Every_event_with_EIO_and_ENOSPC_once_and_always_leaves_a_consistent_image(string format)
    {
        var clock = Stopwatch.StartNew();
        using var dir = new TempDir();
        string template = dir.File("template." + format);
        string backing = dir.PatternFile("backing.raw", (int)Size);
        if (format == "vmdk")
        {
            // A vmdk's parent must be a vmdk (its CID is checked).
            string parent = dir.File("backing.vmdk");
            (await Tools.RunAsync("qemu-img", "convert", "-f", "raw", "-O", "vmdk", backing, parent)).Ok();
            (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "vmdk", "-b", parent, "-F", "vmdk", template)).Ok();
        }
        else
        {
            (await Tools.RunAsync("qemu-img", "create", "-q", "-f", format, "-b", backing, "-F", "raw", template, Size.ToString(System.Globalization.CultureInfo.InvariantCulture))).Ok();
        }

        byte[] empty = File.ReadAllBytes(template);
        var events = EventsOf(format);
        int combinations = 0, checkedWrites = 0;
        var fired = new HashSet<BlkdebugEvent>();
        var problems = new List<string>();
        foreach (var ev in events)
        {
            foreach (int errno in new[] { (int)Errno.EIO, (int)Errno.ENOSPC })
            {
                foreach (bool once in new[] { true, false })
                {
                    combinations++;
                    string image = dir.File("test." + format);
                    File.WriteAllBytes(image, empty);
                    var (writes, failures) = await RunGuestAsync(format, image, ev, errno, once);
                    if (failures > 0)
                        fired.Add(ev);
                    // qemu-img cannot check qcow images.
                    checkedWrites += writes.Count(w => w.Durable);
                    string? verdict = await InjectedGuest.JudgeAsync(format, image, writes, check: format != "qcow");
                    if (verdict != null)
                        problems.Add($"{ev} errno={errno} once={once}: {verdict}");
                }
            }
        }

        string summary = $"{format} error injection: {combinations} event/errno/once combinations tried ({events.Length} events x EIO, ENOSPC x once, always), {checkedWrites} acknowledged writes read back, in {clock.Elapsed.TotalSeconds:F1} s";
        output.WriteLine(summary);
        Console.WriteLine(summary);
        Assert.True(problems.Count == 0, string.Join("\n", problems));
        var silent = events.Where(e => !fired.Contains(e)).ToList();
        Assert.True(silent.Count == 0, "events that never fired: " + string.Join(", ", silent));
        Assert.True(checkedWrites > combinations * 5, summary);
    }

    private static BlockdevOptions Options(string format, string image, BlkdebugEvent ev, int errno, bool once)
    {
        var file = new BlockdevRef
        {
            Definition = new BlockdevOptions
            {
                Driver = BlockdevDriver.Blkdebug,
                Blkdebug = new BlockdevOptionsBlkdebug
                {
                    Image = new BlockdevRef { Definition = new BlockdevOptions { Driver = BlockdevDriver.File, File = new BlockdevOptionsFile { Filename = image } } },
                    InjectError = [new BlkdebugInjectErrorOptions { Event = ev, Errno = errno, Once = once }],
                },
            },
        };
        return format switch
        {
            "qed" => new BlockdevOptions { Driver = BlockdevDriver.Qed, NodeName = "disk", Qed = new BlockdevOptionsGenericCOWFormat { File = file } },
            "vmdk" => new BlockdevOptions { Driver = BlockdevDriver.Vmdk, NodeName = "disk", Vmdk = new BlockdevOptionsGenericCOWFormat { File = file } },
            _ => new BlockdevOptions { Driver = BlockdevDriver.Qcow, NodeName = "disk", Qcow = new BlockdevOptionsQcow { File = file } },
        };
    }

    private static async Task<(List<InjectedGuest.Write> Writes, int Failures)> RunGuestAsync(string format, string image, BlkdebugEvent ev, int errno, bool once)
    {
        var graph = new BlockGraph();
        BlockNode node;
        try
        {
            node = await graph.AddAsync(Options(format, image, ev, errno, once));
        }
        catch (BlockException)
        {
            await graph.DisposeAsync();
            return ([], 1);
        }

        var guest = new InjectedGuest(node);
        // Reads of clusters only the backing file holds, then partial and whole cluster writes spread over
        // several L2 tables (copy-on-write from the backing file), flushed now and then.
        await guest.ReadAsync(6 << 20, 8192);
        for (int i = 0; i < 24; i++)
        {
            long at = (i * 320L << 10) + (i % 3 * 700);
            await guest.WriteAsync(at, (i % 4 + 1) * 24 << 10);
            if (i % 6 == 5)
                await guest.FlushAsync();
        }

        // Rewrites inside allocated clusters and reads of them.
        for (int i = 0; i < 4; i++)
        {
            var old = guest.Writes[i * 5];
            await guest.WriteAsync(old.Offset + 100, 300);
            await guest.ReadAsync(old.Offset, old.Length);
        }

        await guest.FlushAsync();
        // A second open finds the tables on disk: loading them again is where l2_load fires for formats that
        // keep every table they made in memory.
        await graph.DisposeAsync();
        guest.ForgetUnflushed();
        await using var again = new BlockGraph();
        try
        {
            guest.Node = await again.AddAsync(Options(format, image, ev, errno, once));
        }
        catch (BlockException)
        {
            return (guest.Writes, guest.Failures + 1);
        }

        foreach (var w in guest.Writes.Take(6))
            await guest.ReadAsync(w.Offset, w.Length);
        await guest.WriteAsync(7L << 20, 20 << 10);
        await guest.FlushAsync();
        return (guest.Writes, guest.Failures);
    }
}
