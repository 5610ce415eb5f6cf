using System.Diagnostics;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;
using SharpBlock.Interop.Tests.Formats;
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
                    string? verdict = await InjectedGuest.JudgeAsync("qcow2", image, writes);
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
    private static async Task<(List<InjectedGuest.Write> Writes, int Failures)> RunGuestAsync(string image, BlkdebugEvent ev, int errno, bool once)
    {
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
            return ([], 1);
        }

        var guest = new InjectedGuest(node);
        // Writes of whole and partial clusters (copy-on-write from zeros and from old data), over fresh
        // and existing L2 tables, past 2 MiB of file so that the refcount table grows.
        for (int i = 0; i < 40; i++)
        {
            long at = (i * 128L << 10) + (i % 3 * 700);
            await guest.WriteAsync(at, (i % 4 + 1) * 24 << 10);
            if (i % 8 == 7)
                await guest.FlushAsync();
        }

        // Rewrites inside already allocated clusters, writes next to them that share their (evicted) L2
        // tables, and reads that load those tables again.
        for (int i = 0; i < 4; i++)
        {
            var old = guest.Writes[i * 9];
            await guest.WriteAsync(old.Offset + 100, 300);
            await guest.WriteAsync(old.Offset + old.Length + 1000, 2000);
            await guest.ReadAsync(old.Offset, old.Length);
        }

        await guest.FlushAsync();
        // Growing the disk grows the L1 table; then a write lands past the old end.
        await guest.TryAsync(() => node.TruncateAsync(GrownSize));
        await guest.WriteAsync(40L << 20, 20 << 10);
        await guest.FlushAsync();
        await graph.DisposeAsync();
        return (guest.Writes, guest.Failures);
    }
}
