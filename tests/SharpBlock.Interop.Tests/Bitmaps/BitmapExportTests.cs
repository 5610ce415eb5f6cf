using System.Text.Json;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Bitmaps;

/// <summary>
/// Bitmaps exported over NBD (block-export-add's bitmaps and allocation-depth, nbd-server-add's bitmap): the
/// same commands against qemu-storage-daemon 7.2 in one run give the same replies, the same metadata contexts
/// (nbdinfo --list), the same maps (nbdinfo --map, qemu-img map with x-dirty-bitmap) and the same busy flags.
/// </summary>
public class BitmapExportTests
{
    private static readonly string[] Commands =
    [
        """block-dirty-bitmap-add {"node":"n0","name":"b0"}""",
        """block-dirty-bitmap-add {"node":"n0","name":"b1","disabled":true}""",
        """block-export-add {"type":"nbd","id":"e0","node-name":"n0","bitmaps":["b0"]}""",
        """block-export-add {"type":"nbd","id":"e0","node-name":"n0","bitmaps":["zz"]}""",
        """block-export-add {"type":"nbd","id":"e0","node-name":"n0","bitmaps":[{"node":"nope","name":"b0"}]}""",
        """block-export-add {"type":"nbd","id":"e0","node-name":"n0","bitmaps":[{"node":"n0","name":"zz"}]}""",
        """block-export-add {"type":"nbd","id":"e0","node-name":"n0","allocation-depth":"yes"}""",
        """block-export-add {"type":"nbd","id":"e1","node-name":"n0","bitmaps":["b0"],"writable":true}""",
        """block-export-add {"type":"nbd","id":"e2","node-name":"n0","name":"x","bitmaps":[{"node":"n0","name":"b1"}],"allocation-depth":true}""",
        """block-export-add {"type":"nbd","id":"e3","node-name":"n0","name":"y","bitmaps":["b0"],"writable":true}""",
        """block-export-add {"type":"nbd","id":"e4","node-name":"base","name":"z","bitmaps":["bb"]}""",
        """block-dirty-bitmap-clear {"node":"n0","name":"b0"}""",
        """block-dirty-bitmap-remove {"node":"n0","name":"b1"}""",
        """block-dirty-bitmap-enable {"node":"n0","name":"b1"}""",
        """nbd-server-add {"device":"n0","name":"w","bitmap":"zz"}""",
    ];

    private static readonly string[] AfterDel =
    [
        """block-export-del {"id":"e1"}""",
        """block-export-del {"id":"e2"}""",
        """block-dirty-bitmap-clear {"node":"n0","name":"b0"}""",
        """nbd-server-add {"device":"n0","name":"w","bitmap":"b1"}""",
        """nbd-server-remove {"name":"w"}""",
        """block-dirty-bitmap-remove {"node":"n0","name":"b1"}""",
    ];

    private static async Task<List<string>> RunAsync(QmpTestClient c, TempDir dir, string prefix)
    {
        var replies = new List<string>();
        async Task Do(string line) => replies.Add(await QmpTranscript.RunAsync(c, line));

        string basePath = dir.File(prefix + "base.qcow2"), top = dir.File(prefix + "top.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", basePath, "16M")).Ok();
        (await Tools.RunAsync("qemu-io", "-c", "write -P 7 0 1M", basePath)).Ok();
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", "-b", basePath, "-F", "qcow2", top)).Ok();
        await c.ReturnAsync("blockdev-add", $"{{\"driver\":\"qcow2\",\"node-name\":\"base\",\"read-only\":true,\"file\":{{\"driver\":\"file\",\"filename\":{JsonSerializer.Serialize(basePath)}}}}}");
        await c.ReturnAsync("blockdev-add", $"{{\"driver\":\"qcow2\",\"node-name\":\"n0\",\"backing\":\"base\",\"file\":{{\"driver\":\"file\",\"filename\":{JsonSerializer.Serialize(top)}}}}}");
        string sock = dir.File(prefix + "nbd.sock");
        await c.ReturnAsync("nbd-server-start", "{\"addr\":{\"type\":\"unix\",\"data\":{\"path\":" + JsonSerializer.Serialize(sock) + "}}}");

        foreach (string line in Commands)
            await Do(line);
        replies.Add(await QmpTranscript.BitmapsAsync(c));
        replies.Add(await ContextsAsync(sock));

        // A real client writes through the writable export; the bitmap it carries follows.
        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 1 4M 64k", "-c", "write -P 2 10M 1k", "-c", "write -z 12M 128k",
            "-c", "discard 2M 64k", $"nbd+unix:///n0?socket={sock}")).Ok();
        replies.Add((await Tools.RunAsync("nbdinfo", "--map=qemu:dirty-bitmap:b0", $"nbd+unix:///n0?socket={sock}")).Ok().Stdout);
        replies.Add((await Tools.RunAsync("nbdinfo", "--map=qemu:dirty-bitmap:b1", $"nbd+unix:///x?socket={sock}")).Ok().Stdout);
        replies.Add((await Tools.RunAsync("nbdinfo", "--map=qemu:allocation-depth", $"nbd+unix:///x?socket={sock}")).Ok().Stdout);
        replies.Add((await Tools.RunAsync("nbdinfo", "--map=qemu:dirty-bitmap:b0", "--totals", $"nbd+unix:///n0?socket={sock}")).Ok().Stdout);
        // qemu's own client reads a bitmap context in place of base:allocation: dirty extents come back as "data": false.
        replies.Add((await Tools.RunAsync("qemu-img", "map", "--output=json", "--image-opts",
            $"driver=nbd,server.type=unix,server.path={sock},export=n0,x-dirty-bitmap=qemu:dirty-bitmap:b0")).Ok().Stdout);

        foreach (string line in AfterDel)
            await Do(line);
        replies.Add(await QmpTranscript.BitmapsAsync(c));
        await c.ReturnAsync("nbd-server-stop");
        replies.Add(await QmpTranscript.BitmapsAsync(c));
        return replies;
    }

    /// <summary>Every export's name and metadata contexts as nbdinfo lists them.</summary>
    private static async Task<string> ContextsAsync(string sock)
    {
        var list = (await Tools.RunAsync("nbdinfo", "--json", "--list", $"nbd+unix:///?socket={sock}")).Ok();
        using var doc = JsonDocument.Parse(list.Stdout);
        var lines = new List<string>();
        foreach (var e in doc.RootElement.GetProperty("exports").EnumerateArray())
            lines.Add(e.GetProperty("export-name").GetString() + ": " + QmpTranscript.Canonical(e.GetProperty("contexts")) + " ro=" + e.GetProperty("is_read_only").GetBoolean());
        lines.Sort(StringComparer.Ordinal);
        return string.Join("\n", lines);
    }

    [Fact]
    public async Task Exported_bitmaps_and_allocation_depth_are_qemu_storage_daemons()
    {
        using var dir = new TempDir();
        List<string> theirs;
        await using (var qsd = await QemuStorageDaemon.StartAsync(dir.File("qsd.sock")))
            theirs = await RunAsync(qsd.Client, dir, "q-");

        await using var d = await QmpHarness.StartAsync();
        var ours = await RunAsync(d.Client, dir, "s-");
        var expected = theirs.Select(t => t.Replace("/q-", "/s-", StringComparison.Ordinal)).ToList();
        // Every difference at once, so one run shows them all.
        var diffs = expected.Zip(ours).Where(p => p.First != p.Second).Select(p => "qsd:  " + p.First + "\nours: " + p.Second).ToList();
        Assert.True(diffs.Count == 0 && expected.Count == ours.Count, string.Join("\n\n", diffs));
    }
}
