using System.Diagnostics;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;
using SharpBlock.Testing;
using Xunit.Abstractions;

namespace SharpBlock.Interop.Tests.Qcow2;

/// <summary>
/// In the spirit of QEMU's iotests 026: for every metadata event qcow2 raises, a blkdebug filter under the
/// image fails the request after it with EIO or ENOSPC, once or always, while a guest writes, grows the disk
/// and flushes. Afterwards qemu-img check must find no corruption (leaks are allowed) and qemu-io must read
/// back every write that a later flush acknowledged.
/// </summary>
public class Qcow2ErrorInjectionTests(ITestOutputHelper output)
{
    // Small clusters and 64-bit refcounts put every kind of metadata update within a few MiB of writes:
    // a 64-entry L2 table maps 32 KiB, a refcount block covers 32 KiB of file and the one-cluster refcount
    // table 2 MiB, so the run allocates L2 tables and refcount blocks, grows the refcount table past its
    // 2 MiB of file, and its resize grows the L1 table.
    private const int Cluster = 512;
    private const long Size = 8 << 20;
    private const long GrownSize = 64 << 20;

    private static readonly BlkdebugEvent[] Events =
    [
        BlkdebugEvent.L1Update, BlkdebugEvent.L1GrowAllocTable, BlkdebugEvent.L1GrowWriteTable, BlkdebugEvent.L1GrowActivateTable,
        BlkdebugEvent.L2Load, BlkdebugEvent.L2Update, BlkdebugEvent.L2AllocWrite,
        BlkdebugEvent.ReadAio, BlkdebugEvent.WriteAio, BlkdebugEvent.CowRead, BlkdebugEvent.CowWrite,
        BlkdebugEvent.RefblockLoad, BlkdebugEvent.RefblockUpdate, BlkdebugEvent.RefblockUpdatePart,
        BlkdebugEvent.RefblockAlloc, BlkdebugEvent.RefblockAllocHookup, BlkdebugEvent.RefblockAllocWrite,
        BlkdebugEvent.RefblockAllocWriteBlocks, BlkdebugEvent.RefblockAllocWriteTable, BlkdebugEvent.RefblockAllocSwitchTable,
        BlkdebugEvent.ReftableGrow, BlkdebugEvent.ClusterAlloc, BlkdebugEvent.ClusterFree,
        BlkdebugEvent.FlushToOs, BlkdebugEvent.FlushToDisk,
    ];

    /// <summary>One guest write: its own range, its own byte, and whether a flush after it succeeded.</summary>
    private sealed record Write(long Offset, int Length, byte Pattern)
    {
        public bool Durable { get; set; }
    }

    [Fact]
    public async Task Every_metadata_event_with_EIO_and_ENOSPC_once_and_always_leaves_a_consistent_image()
    {
        var clock = Stopwatch.StartNew();
        using var dir = new TempDir();
        string template = dir.File("template.qcow2");
        // A backing file makes partial writes copy on write from it (cow_read, cow_write, read_backing_aio).
        string backing = dir.PatternFile("backing.raw", (int)Size);
        (await Tools.RunAsync("qemu-img", "create", "-f", "qcow2", "-o", $"cluster_size={Cluster},refcount_bits=64",
            "-b", backing, "-F", "raw", template, Size.ToString(System.Globalization.CultureInfo.InvariantCulture))).Ok();
        byte[] empty = File.ReadAllBytes(template);

        int combinations = 0;
        int checkedWrites = 0;
        var failedSomething = new HashSet<BlkdebugEvent>();
        var problems = new List<string>();
        foreach (var ev in Events)
        {
            foreach (int errno in new[] { (int)Errno.EIO, (int)Errno.ENOSPC })
            {
                foreach (bool once in new[] { true, false })
                {
                    combinations++;
                    string image = dir.File("test.qcow2");
                    File.WriteAllBytes(image, empty);
                    var (writes, failures) = await RunGuestAsync(image, ev, errno, once);
                    if (failures > 0)
                        failedSomething.Add(ev);
                    string name = $"{ev} errno={errno} once={once}";
                    checkedWrites += writes.Count(w => w.Durable);
                    string? verdict = await JudgeAsync(image, writes);
                    if (verdict != null)
                        problems.Add($"{name}: {verdict}");
                }
            }
        }

        string summary = $"qcow2 error injection: {combinations} event/errno/once combinations tried ({Events.Length} events x EIO, ENOSPC x once, always), {checkedWrites} acknowledged writes read back, in {clock.Elapsed.TotalSeconds:F1} s";
        output.WriteLine(summary);
        Console.WriteLine(summary);
        Assert.True(problems.Count == 0, string.Join("\n", problems));
        // Each event fired somewhere in the run: an always-failing rule on it broke at least one request.
        var silent = Events.Where(e => !failedSomething.Contains(e)).ToList();
        Assert.True(silent.Count == 0, "events that never fired: " + string.Join(", ", silent));
        Assert.True(checkedWrites > combinations * 10, summary);
    }

    /// <summary>The guest's work over a qcow2 on a blkdebug filter with one rule; returns its writes and how many requests failed.</summary>
    private static async Task<(List<Write> Writes, int Failures)> RunGuestAsync(string image, BlkdebugEvent ev, int errno, bool once)
    {
        var writes = new List<Write>();
        int failures = 0;
        var graph = new BlockGraph();
        BlockNode node;
        try
        {
            node = await graph.AddAsync(new BlockdevOptions
            {
                Driver = BlockdevDriver.Qcow2,
                NodeName = "disk",
                Qcow2 = new BlockdevOptionsQcow2
                {
                    // Eight L2 tables and four refcount blocks in memory: tables are evicted, written back
                    // and loaded again during the run (l2_load, l2_update, refblock_load).
                    L2CacheSize = 8 * Cluster,
                    RefcountCacheSize = 4 * Cluster,
                    File = new BlockdevRef
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
                    },
                },
            });
        }
        catch (BlockException)
        {
            // The rule broke the open (a refcount table load): nothing was written.
            await graph.DisposeAsync();
            return (writes, 1);
        }

        var pending = new List<Write>();
        async Task<bool> Try(Func<ValueTask> op)
        {
            try
            {
                await op();
                return true;
            }
            catch (BlockException)
            {
                failures++;
                return false;
            }
        }

        async Task Flush()
        {
            if (await Try(() => node.FlushAsync()))
            {
                foreach (var w in pending)
                    w.Durable = true;
                pending.Clear();
            }
        }

        byte pattern = 0;
        async Task GuestWrite(long offset, int length)
        {
            var w = new Write(offset, length, ++pattern);
            writes.Add(w);
            var data = new byte[length];
            Array.Fill(data, w.Pattern);
            if (await Try(() => node.WriteAsync(offset, data)))
                pending.Add(w);
        }

        // Writes of whole and partial clusters (copy-on-write from zeros and from old data), over fresh
        // and existing L2 tables, past 2 MiB of file so that the refcount table grows.
        for (int i = 0; i < 40; i++)
        {
            long at = (i * 128L << 10) + (i % 3 * 700);
            await GuestWrite(at, (i % 4 + 1) * 24 << 10);
            if (i % 8 == 7)
                await Flush();
        }

        // Rewrites inside already allocated clusters, writes next to them that share their (evicted) L2
        // tables, and reads that load those tables again.
        for (int i = 0; i < 4; i++)
        {
            var old = writes[i * 9];
            await GuestWrite(old.Offset + 100, 300);
            await GuestWrite(old.Offset + old.Length + 1000, 2000);
            await Try(() => node.ReadAsync(old.Offset, new byte[old.Length]));
        }

        await Flush();
        // Growing the disk grows the L1 table; then a write lands past the old end.
        await Try(() => node.TruncateAsync(GrownSize));
        await GuestWrite(40L << 20, 20 << 10);
        await Flush();
        await graph.DisposeAsync();
        return (writes, failures);
    }

    /// <summary>Null when qemu-img finds no corruption and every durable write reads back; else what went wrong.</summary>
    private static async Task<string?> JudgeAsync(string image, List<Write> writes)
    {
        var check = await Tools.RunAsync("qemu-img", "check", image);
        // 0: clean; 3: leaked clusters only. 2 is corruption, 1 a check that could not run.
        if (check.ExitCode is not (0 or 3))
            return $"qemu-img check exit {check.ExitCode}: {check.Stdout}{check.Stderr}";

        // A later write over part of an earlier one (the rewrites) leaves that part uncertain unless durable too.
        var args = new List<string> { "-r", "-f", "qcow2" };
        foreach (var w in writes)
        {
            if (!w.Durable)
                continue;
            long start = w.Offset, end = w.Offset + w.Length;
            foreach (var later in writes)
            {
                if (later.Pattern > w.Pattern && later.Offset < end && w.Offset < later.Offset + later.Length)
                {
                    // Check only the part before the overlapping rewrite.
                    end = Math.Min(end, later.Offset);
                }
            }

            if (end > start)
                args.AddRange(["-c", $"read -q -P {w.Pattern} {start} {end - start}"]);
        }

        if (args.Count == 3)
            return null;
        args.Add(image);
        var read = await Tools.RunAsync("qemu-io", args);
        string all = read.Stdout + read.Stderr;
        if (read.ExitCode != 0 || all.Contains("failed", StringComparison.OrdinalIgnoreCase) || all.Contains("error", StringComparison.OrdinalIgnoreCase))
            return $"acknowledged data differs: {all}";
        return null;
    }
}
