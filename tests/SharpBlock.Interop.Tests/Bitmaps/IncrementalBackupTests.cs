using System.Text.Json;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Bitmaps;

/// <summary>
/// drive-backup with sync incremental and bitmap: a full backup, then incrementals into qcow2 overlays of the
/// previous backup, each holding only the clusters written since (qemu-img map), each chain equal to the source
/// at that moment (qemu-img compare); the bitmap's fate per bitmap-mode; refusals in qemu-storage-daemon's words.
/// </summary>
public class IncrementalBackupTests
{
    private const int Size = 8 << 20;

    internal static async Task BackupAsync(QmpTestClient c, string args)
    {
        await c.ReturnAsync("drive-backup", args);
        var done = await c.WaitEventAsync("BLOCK_JOB_COMPLETED");
        Assert.False(done.GetProperty("data").TryGetProperty("error", out _), done.ToString());
    }

    /// <summary>Guest offsets of the clusters the image itself holds, data or zeros (not its backing chain).</summary>
    internal static async Task<List<long>> OwnDataAsync(string image)
    {
        var map = (await Tools.RunAsync("qemu-img", "map", "-U", "--output=json", image)).Ok().Stdout;
        var list = new List<long>();
        foreach (var e in JsonDocument.Parse(map).RootElement.EnumerateArray())
        {
            if (e.GetProperty("depth").GetInt32() == 0 && (e.GetProperty("data").GetBoolean() || e.GetProperty("zero").GetBoolean()))
            {
                for (long o = e.GetProperty("start").GetInt64(); o < e.GetProperty("start").GetInt64() + e.GetProperty("length").GetInt64(); o += 65536)
                    list.Add(o);
            }
        }

        return list;
    }

    internal static async Task<long> CountAsync(QmpTestClient c, string bitmap)
    {
        foreach (var d in (await c.ReturnAsync("query-block")).EnumerateArray())
        {
            foreach (var b in d.GetProperty("inserted").GetProperty("dirty-bitmaps").EnumerateArray())
            {
                if (b.GetProperty("name").GetString() == bitmap)
                    return b.GetProperty("count").GetInt64();
            }
        }

        throw new InvalidOperationException("no bitmap " + bitmap);
    }

    [Fact]
    public async Task Incremental_backups_hold_only_what_changed_and_restore_the_source()
    {
        await using var d = await QmpHarness.StartAsync();
        string src = d.Dir.File("src.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", src, Size.ToString(System.Globalization.CultureInfo.InvariantCulture))).Ok();
        (await Tools.RunAsync("qemu-io", "-c", "write -P 0x11 0 2M", src)).Ok();
        await d.Client.ReturnAsync("blockdev-add", $"{{\"driver\":\"qcow2\",\"id\":\"disk0\",\"file\":{{\"driver\":\"file\",\"filename\":{JsonSerializer.Serialize(src)}}}}}");
        await d.Client.ReturnAsync("block-dirty-bitmap-add", "{\"node\":\"disk0\",\"name\":\"b0\",\"persistent\":true}");
        string full = d.Dir.File("full.qcow2");
        await BackupAsync(d.Client, $"{{\"device\":\"disk0\",\"target\":{JsonSerializer.Serialize(full)},\"format\":\"qcow2\",\"sync\":\"full\"}}");

        // The guest writes through NBD; the next backup copies those clusters and nothing else.
        await d.StartNbdAsync();
        await d.ExportAsync("disk0", writable: true);
        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 0x22 1M 64k", "-c", "write -P 0x33 5M 10", d.Url("disk0"))).Ok();
        Assert.Equal(2 * 65536, await CountAsync(d.Client, "b0"));
        string inc1 = d.Dir.File("inc1.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", "-b", full, "-F", "qcow2", inc1)).Ok();
        await BackupAsync(d.Client, $"{{\"device\":\"disk0\",\"target\":{JsonSerializer.Serialize(inc1)},\"format\":\"qcow2\",\"sync\":\"incremental\",\"bitmap\":\"b0\",\"mode\":\"existing\"}}");
        Assert.Equal(0, await CountAsync(d.Client, "b0"));
        Assert.Equal([1L << 20, 5L << 20], await OwnDataAsync(inc1));
        (await Tools.RunAsync("qemu-img", "compare", "-U", src, inc1)).Ok();

        // Again, with bitmap-mode never: the bitmap keeps its marks.
        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 0x44 7M 70k", "-c", "write -z 0 64k", d.Url("disk0"))).Ok();
        string inc2 = d.Dir.File("inc2.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", "-b", inc1, "-F", "qcow2", inc2)).Ok();
        await BackupAsync(d.Client, $"{{\"device\":\"disk0\",\"target\":{JsonSerializer.Serialize(inc2)},\"format\":\"qcow2\",\"sync\":\"bitmap\",\"bitmap\":\"b0\",\"bitmap-mode\":\"never\",\"mode\":\"existing\"}}");
        Assert.Equal(3 * 65536, await CountAsync(d.Client, "b0"));
        Assert.Equal([0L, 7L << 20, (7L << 20) + 65536], await OwnDataAsync(inc2));
        (await Tools.RunAsync("qemu-img", "compare", "-U", src, inc2)).Ok();
        // The previous link of the chain still shows the source as it was then.
        Assert.Equal(1, (await Tools.RunAsync("qemu-img", "compare", "-U", inc1, inc2)).ExitCode);
    }

    private static readonly string[] Refusals =
    [
        """{"device":"DEV","target":"T","format":"qcow2","sync":"incremental"}""",
        """{"device":"DEV","target":"T","format":"qcow2","sync":"bitmap"}""",
        """{"device":"DEV","target":"T","format":"qcow2","sync":"bitmap","bitmap":"b"}""",
        """{"device":"DEV","target":"T","format":"qcow2","sync":"incremental","bitmap":"b","bitmap-mode":"never"}""",
        """{"device":"DEV","target":"T","format":"qcow2","sync":"incremental","bitmap":"zz"}""",
        """{"device":"DEV","target":"T","format":"qcow2","sync":"full","bitmap":"b"}""",
        """{"device":"DEV","target":"T","format":"qcow2","sync":"full","bitmap":"b","bitmap-mode":"never"}""",
        """{"device":"DEV","target":"T","format":"qcow2","sync":"none","bitmap":"b","bitmap-mode":"always"}""",
        """{"device":"DEV","target":"T","format":"qcow2","sync":"full","bitmap-mode":"always"}""",
        """{"device":"DEV","target":"T","format":"qcow2","sync":"bitmap","bitmap":"b","bitmap-mode":"sometimes"}""",
    ];

    [Fact]
    public async Task Bitmap_backup_arguments_are_refused_in_qemu_storage_daemons_words()
    {
        using var dir = new TempDir();
        string img = dir.File("a.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", img, "1M")).Ok();
        async Task<List<string>> RunAsync(QmpTestClient c, string dev)
        {
            await c.ReturnAsync("block-dirty-bitmap-add", $"{{\"node\":\"{dev}\",\"name\":\"b\"}}");
            var list = new List<string>();
            foreach (string r in Refusals)
            {
                var reply = await c.ExecuteAsync("drive-backup", r.Replace("DEV", dev, StringComparison.Ordinal).Replace("T", dir.File("t.qcow2"), StringComparison.Ordinal));
                list.Add(reply.GetProperty("error").GetProperty("desc").GetString()!);
            }

            list.Add((await c.ExecuteAsync("drive-mirror", $"{{\"device\":\"{dev}\",\"target\":\"{dir.File("m.qcow2")}\",\"format\":\"qcow2\",\"sync\":\"incremental\"}}")).GetProperty("error").GetProperty("desc").GetString()!);
            return list;
        }

        List<string> theirs;
        await using (var qsd = await QemuStorageDaemon.StartAsync(dir.File("qsd.sock"), "--blockdev", $"driver=qcow2,node-name=n0,file.driver=file,file.filename={img}"))
            theirs = await RunAsync(qsd.Client, "n0");
        await using var d = await QmpHarness.StartAsync();
        await d.Client.ReturnAsync("blockdev-add", $"{{\"driver\":\"qcow2\",\"id\":\"n0\",\"file\":{{\"driver\":\"file\",\"filename\":{JsonSerializer.Serialize(img)}}}}}");
        Assert.Equal(theirs, await RunAsync(d.Client, "n0"));
    }
}
