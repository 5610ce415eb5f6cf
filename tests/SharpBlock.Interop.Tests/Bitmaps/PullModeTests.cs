using System.Globalization;
using System.Text.Json;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Bitmaps;

/// <summary>
/// Pull-mode incremental backup as backup tools run it over NBD: the bitmap is frozen (disabled) at the same
/// moment a sync=none backup starts a fleecing overlay; the overlay is exported read-only with the bitmap;
/// the tool asks the export which extents are dirty (nbdinfo --map, qemu-img map with x-dirty-bitmap),
/// copies just those (qemu-img dd) onto the previous backup while the guest keeps writing, and the result
/// equals the disk at the freeze.
/// </summary>
public class PullModeTests
{
    private const int Size = 8 << 20, Cluster = 64 << 10;

    [Fact]
    public async Task Dirty_extents_of_a_fleecing_export_applied_to_the_last_backup_give_the_point_in_time_image()
    {
        await using var h = await QmpHarness.StartAsync();
        string src = h.Dir.File("src.qcow2"), prev = h.Dir.File("prev.raw");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", src, Size.ToString(CultureInfo.InvariantCulture))).Ok();
        (await Tools.RunAsync("qemu-io", "-c", "write -P 5 0 3M", "-c", "write -P 6 5M 1M", src)).Ok();
        // The full backup of yesterday.
        (await Tools.RunAsync("qemu-img", "convert", "-O", "raw", src, prev)).Ok();
        byte[] now = File.ReadAllBytes(prev);

        await h.Client.ReturnAsync("blockdev-add", $"{{\"driver\":\"qcow2\",\"id\":\"d0\",\"file\":{{\"driver\":\"file\",\"filename\":{JsonSerializer.Serialize(src)}}}}}");
        var dev = h.Device("d0");
        await h.Client.ReturnAsync("block-dirty-bitmap-add", """{"node":"d0","name":"b0"}""");

        // Today's guest writes, some inside one cluster, some across clusters.
        var rng = new Random(21);
        var dirty = new SortedSet<long>();
        async Task GuestWriteAsync(bool track)
        {
            int off = rng.Next(0, Size - 100_000), len = rng.Next(1, 100_000);
            var data = new byte[len];
            rng.NextBytes(data);
            await dev.WriteAsync(off, data);
            data.CopyTo(now, off);
            if (track)
            {
                for (long c = off / Cluster; c <= (off + len - 1) / Cluster; c++)
                    dirty.Add(c * Cluster);
            }
        }

        for (int i = 0; i < 12; i++)
            await GuestWriteAsync(track: true);

        // The freeze: the bitmap stops recording as the fleecing overlay starts.
        await h.Client.ReturnAsync("block-dirty-bitmap-disable", """{"node":"d0","name":"b0"}""");
        string fleece = h.Dir.File("fleece.qcow2");
        await h.Client.ReturnAsync("drive-backup", $$"""{"device":"d0","target":{{JsonSerializer.Serialize(fleece)}},"sync":"none","format":"qcow2"}""");
        byte[] atFreeze = (byte[])now.Clone();
        string node = await FleeceNodeAsync(h.Client, fleece);
        await h.StartNbdAsync();
        await h.Client.ReturnAsync("block-export-add", $$"""{"type":"nbd","id":"fl","node-name":"{{node}}","name":"fl","bitmaps":["b0"]}""");
        string url = h.Url("fl");

        // The guest goes on writing while the tool reads.
        using var stop = new CancellationTokenSource();
        int during = 0;
        var guest = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested || during == 0)
            {
                await GuestWriteAsync(track: false);
                during++;
                await Task.Delay(5);
            }
        });

        try
        {
            var expected = Runs(dirty);
            var map = (await Tools.RunAsync("nbdinfo", "--map=qemu:dirty-bitmap:b0", url)).Ok().Stdout;
            var fromNbdinfo = new List<(long Start, long Length)>();
            foreach (var line in map.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (f[2] == "1")
                    fromNbdinfo.Add((long.Parse(f[0], CultureInfo.InvariantCulture), long.Parse(f[1], CultureInfo.InvariantCulture)));
            }

            Assert.Equal(expected, fromNbdinfo);

            // qemu's NBD client reports the bitmap's dirty extents as "data": false.
            var qmap = (await Tools.RunAsync("qemu-img", "map", "--output=json", "--image-opts",
                $"driver=nbd,server.type=unix,server.path={h.NbdSocket},export=fl,x-dirty-bitmap=qemu:dirty-bitmap:b0")).Ok().Stdout;
            var fromQemu = new List<(long Start, long Length)>();
            foreach (var e in JsonDocument.Parse(qmap).RootElement.EnumerateArray())
            {
                if (!e.GetProperty("data").GetBoolean())
                    fromQemu.Add((e.GetProperty("start").GetInt64(), e.GetProperty("length").GetInt64()));
            }

            Assert.Equal(expected, fromQemu);

            // Copy exactly those extents onto yesterday's backup.
            byte[] backup = File.ReadAllBytes(prev);
            string piece = h.Dir.File("piece.raw");
            foreach (var (start, length) in fromNbdinfo)
            {
                File.Delete(piece);
                // qemu-img dd stops at block `count` of the input counted from its start, not from `skip`.
                (await Tools.RunAsync("qemu-img", "dd", "-f", "raw", "-O", "raw", $"bs={Cluster}", $"skip={start / Cluster}",
                    $"count={(start + length) / Cluster}", $"if={url}", $"of={piece}")).Ok();
                Assert.Equal(length, new FileInfo(piece).Length);
                File.ReadAllBytes(piece).CopyTo(backup, start);
            }

            File.WriteAllBytes(prev, backup);
        }
        finally
        {
            stop.Cancel();
            await guest;
        }

        Assert.True(during > 0);
        await Tools.AssertRawImageEqualsAsync(prev, atFreeze, h.Dir.Path);
        Assert.NotEqual(atFreeze, now);

        // While exported the bitmap is busy; once the export is gone it can be cleared for the next round.
        Assert.Equal(("GenericError", "Bitmap 'b0' is currently in use by another operation and cannot be used"),
            await h.Client.ErrorAsync("block-dirty-bitmap-clear", """{"node":"d0","name":"b0"}"""));
        await h.Client.ReturnAsync("block-export-del", """{"id":"fl"}""");
        await h.Client.WaitEventAsync("BLOCK_EXPORT_DELETED");
        await h.Client.ReturnAsync("block-dirty-bitmap-clear", """{"node":"d0","name":"b0"}""");
        await h.Client.ReturnAsync("block-job-cancel", """{"device":"d0"}""");
        await h.Client.WaitEventAsync("BLOCK_JOB_CANCELLED");
    }

    /// <summary>Clusters merged into runs, as a bitmap's extents are.</summary>
    private static List<(long Start, long Length)> Runs(SortedSet<long> clusters)
    {
        var runs = new List<(long Start, long Length)>();
        foreach (long c in clusters)
        {
            if (runs.Count > 0 && runs[^1].Start + runs[^1].Length == c)
                runs[^1] = (runs[^1].Start, runs[^1].Length + Cluster);
            else
                runs.Add((c, Cluster));
        }

        return runs;
    }

    private static async Task<string> FleeceNodeAsync(QmpTestClient c, string file)
    {
        foreach (var n in (await c.ReturnAsync("query-named-block-nodes")).EnumerateArray())
        {
            if (n.GetProperty("file").GetString() == file && n.GetProperty("drv").GetString() == "qcow2")
                return n.GetProperty("node-name").GetString()!;
        }

        throw new InvalidOperationException("no qcow2 node over " + file);
    }
}
