using System.Globalization;
using System.Text.Json;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Bitmaps;

/// <summary>
/// A backup tool's day, end to end over QMP and NBD: a full backup and a fresh bitmap started in one
/// transaction, guest writes through NBD (some while the full backup runs), an incremental backup into a
/// qcow2 overlay of the full one, more writes, a second incremental. Every chain equals the disk at its
/// point in time (qemu-img compare) and every incremental holds exactly the clusters written since the last.
/// </summary>
public class BackupDayTests
{
    private const int Size = 32 << 20, Cluster = 64 << 10;

    [Fact]
    public async Task Full_then_two_incrementals_restore_the_disk_at_each_point_and_hold_only_what_changed()
    {
        await using var d = await QmpHarness.StartAsync();
        string src = d.Dir.File("src.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", src, Size.ToString(CultureInfo.InvariantCulture))).Ok();
        (await Tools.RunAsync("qemu-io", "-c", "write -P 0x11 0 12M", "-c", "write -P 0x12 20M 3M", src)).Ok();
        await d.Client.ReturnAsync("blockdev-add", $"{{\"driver\":\"qcow2\",\"id\":\"disk0\",\"file\":{{\"driver\":\"file\",\"filename\":{JsonSerializer.Serialize(src)}}}}}");
        await d.StartNbdAsync();
        await d.Client.ReturnAsync("block-export-add", """{"type":"nbd","id":"e0","node-name":"disk0","name":"disk0","writable":true}""");
        string url = d.Url("disk0");
        string atFull = d.Dir.File("at-full.raw");
        (await Tools.RunAsync("qemu-img", "convert", "-f", "raw", "-O", "raw", url, atFull)).Ok();

        // 1. The full backup and the bitmap that will drive tomorrow's incremental start at the same instant.
        string full = d.Dir.File("full.qcow2");
        await d.Client.ReturnAsync("transaction", $$$"""
            {"actions": [
              {"type": "block-dirty-bitmap-add", "data": {"node": "disk0", "name": "daily", "persistent": true}},
              {"type": "drive-backup", "data": {"device": "disk0", "target": {{{JsonSerializer.Serialize(full)}}}, "format": "qcow2", "sync": "full", "speed": 8388608}}
            ]}
            """);
        // Written while the full backup still runs (it is held to 8 MiB/s): copy-before-write keeps them out
        // of the full backup, and the bitmap, born at the same instant, records them.
        var first = new SortedSet<long>();
        await GuestWritesAsync(url, first, ("0x21", 1 << 20, 4096), ("0x22", 5 << 20, 200_000), ("0x23", 30 << 20, 1));
        Assert.Single((await d.Client.ReturnAsync("query-block-jobs")).EnumerateArray());
        await d.Client.ReturnAsync("block-job-set-speed", """{"device":"disk0","speed":0}""");
        var done = await d.Client.WaitEventAsync("BLOCK_JOB_COMPLETED");
        Assert.False(done.GetProperty("data").TryGetProperty("error", out _), done.ToString());
        Assert.Equal("Images are identical.", (await Tools.RunAsync("qemu-img", "compare", "-f", "qcow2", "-F", "raw", full, atFull)).Ok().Stdout.Trim());
        Assert.Equal(first.Count * (long)Cluster, await IncrementalBackupTests.CountAsync(d.Client, "daily"));

        // 2. The first incremental: only the clusters written since the full backup began.
        string inc1 = d.Dir.File("inc1.qcow2");
        await IncrementalAsync(d, full, inc1);
        Assert.Equal(first, new SortedSet<long>(await IncrementalBackupTests.OwnDataAsync(inc1)));
        Assert.Equal("Images are identical.", (await Tools.RunAsync("qemu-img", "compare", "-F", "raw", inc1, url)).Ok().Stdout.Trim());
        Assert.Equal(0, await IncrementalBackupTests.CountAsync(d.Client, "daily"));

        // 3. More writes, a second incremental on top of the first.
        var second = new SortedSet<long>();
        await GuestWritesAsync(url, second, ("0x31", 1 << 20, 70_000), ("0x32", 16 << 20, 65536), ("0x33", (32 << 20) - 512, 512));
        string inc2 = d.Dir.File("inc2.qcow2");
        await IncrementalAsync(d, inc1, inc2);
        Assert.Equal(second, new SortedSet<long>(await IncrementalBackupTests.OwnDataAsync(inc2)));
        Assert.Equal("Images are identical.", (await Tools.RunAsync("qemu-img", "compare", "-F", "raw", inc2, url)).Ok().Stdout.Trim());
        // The previous point in time is still there, one layer down.
        Assert.NotEqual("Images are identical.", (await Tools.RunAsync("qemu-img", "compare", "-F", "raw", inc1, url)).Stdout.Trim());

        // The incrementals are small: a handful of clusters each, not the disk.
        Assert.True(new FileInfo(inc1).Length < 2 << 20, $"inc1 is {new FileInfo(inc1).Length} bytes");
        Assert.True(new FileInfo(inc2).Length < 2 << 20, $"inc2 is {new FileInfo(inc2).Length} bytes");
        foreach (string image in new[] { full, inc1, inc2 })
            Assert.StartsWith("No errors were found on the image.", (await Tools.RunAsync("qemu-img", "check", image)).Ok().Stdout, StringComparison.Ordinal);

        // The bitmap is persistent: after the device closes, qemu-img finds it in the image, consistent.
        await d.Client.ReturnAsync("block-export-del", """{"id":"e0"}""");
        await d.Client.WaitEventAsync("BLOCK_EXPORT_DELETED");
        await d.Client.ReturnAsync("blockdev-del", """{"node-name":"disk0"}""");
        var info = (await Tools.RunAsync("qemu-img", "info", "--output=json", src)).Ok().Stdout;
        var bitmaps = JsonDocument.Parse(info).RootElement.GetProperty("format-specific").GetProperty("data").GetProperty("bitmaps");
        Assert.Equal("daily", bitmaps[0].GetProperty("name").GetString());
        Assert.Equal(["auto"], bitmaps[0].GetProperty("flags").EnumerateArray().Select(f => f.GetString()));
        Assert.StartsWith("No errors were found on the image.", (await Tools.RunAsync("qemu-img", "check", src)).Ok().Stdout, StringComparison.Ordinal);
    }

    /// <summary>An incremental into a new qcow2 overlay of the previous backup, as backup tools run it.</summary>
    private static async Task IncrementalAsync(QmpHarness d, string previous, string target)
    {
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", "-b", previous, "-F", "qcow2", target)).Ok();
        await IncrementalBackupTests.BackupAsync(d.Client, $$"""
            {"device":"disk0","target":{{JsonSerializer.Serialize(target)}},"format":"qcow2","mode":"existing","sync":"incremental","bitmap":"daily"}
            """);
    }

    /// <summary>qemu-io writes through the NBD export; the clusters they touch are added to <paramref name="clusters"/>.</summary>
    private static async Task GuestWritesAsync(string url, SortedSet<long> clusters, params (string Pattern, long Offset, int Length)[] writes)
    {
        var args = new List<string> { "-f", "raw" };
        foreach (var (pattern, offset, length) in writes)
        {
            args.Add("-c");
            args.Add($"write -P {pattern} {offset} {length}");
            for (long c = offset / Cluster; c <= (offset + length - 1) / Cluster; c++)
                clusters.Add(c * Cluster);
        }

        args.Add(url);
        (await Tools.RunAsync("qemu-io", args)).Ok();
    }
}
