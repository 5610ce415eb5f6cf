using System.Text.Json;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Jobs;

/// <summary>
/// Snapshots, block-stream and block-commit over QMP on qcow2 chains built by qemu-img and qemu-io; the
/// results are judged by qemu-img check, qemu-img compare and qemu-img info.
/// </summary>
public class ChainTests
{
    private const string Size = "4M";

    /// <summary>base.qcow2 &lt;- mid.qcow2 &lt;- top.qcow2, each with its own data, and the raw image the chain reads as.</summary>
    private static async Task<(string Base, string Mid, string Top, string Reference)> BuildChainAsync(TempDir dir)
    {
        string b = dir.File("base.qcow2"), m = dir.File("mid.qcow2"), t = dir.File("top.qcow2"), r = dir.File("reference.raw");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", b, Size)).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 1M", "-c", "write -P 0x12 2M 512k", b)).Ok();
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", "-b", b, "-F", "qcow2", m)).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "qcow2", "-c", "write -P 0x22 512k 1M", "-c", "write -z 2M 64k", m)).Ok();
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", "-b", m, "-F", "qcow2", t)).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "qcow2", "-c", "write -P 0x33 768k 64k", "-c", "write -P 0x34 3M 100k", t)).Ok();
        (await Tools.RunAsync("qemu-img", "convert", "-f", "qcow2", "-O", "raw", t, r)).Ok();
        return (b, m, t, r);
    }

    private static async Task AssertSameAsync(string reference, string image)
    {
        var r = await Tools.RunAsync("qemu-img", "compare", "-f", "raw", reference, image);
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
    }

    private static async Task AssertCleanAsync(string image)
    {
        var r = await Tools.RunAsync("qemu-img", "check", image);
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
    }

    private static async Task<string?> BackingOfAsync(string image)
    {
        var r = (await Tools.RunAsync("qemu-img", "info", "--output=json", image)).Ok();
        using var doc = JsonDocument.Parse(r.Stdout);
        return doc.RootElement.TryGetProperty("backing-filename", out var b) ? b.GetString() : null;
    }

    private static string Qcow2Device(string id, string path) =>
        "{\"driver\": \"qcow2\", \"id\": \"" + id + "\", \"file\": {\"driver\": \"file\", \"filename\": \"" + path + "\"}}";

    [Fact]
    public async Task Stream_flattens_the_chain_while_the_guest_writes()
    {
        await using var h = QmpServerHarness.Start();
        var (_, _, top, reference) = await BuildChainAsync(h.Dir);
        await using var c = await h.ConnectAsync();
        await c.ReturnAsync("blockdev-add", Qcow2Device("d0", top));
        var info = (await c.ReturnAsync("query-block"))[0].GetProperty("inserted");
        Assert.Equal(2, info.GetProperty("backing_file_depth").GetInt32());

        await c.ReturnAsync("block-stream", """{"device": "d0", "speed": 4194304}""");
        // Guest writes into ranges the stream has not reached yet must survive it.
        var dev = h.Graph.FindDevice("d0")!;
        var model = File.ReadAllBytes(reference);
        var data = Enumerable.Repeat((byte)0x5A, 200_000).ToArray();
        await dev.WriteAsync(2_500_000, data);
        data.CopyTo(model, 2_500_000);
        await File.WriteAllBytesAsync(reference, model);

        var done = await c.WaitEventAsync("BLOCK_JOB_COMPLETED");
        Assert.Equal("stream", done.GetProperty("data").GetProperty("type").GetString());
        Assert.False(done.GetProperty("data").TryGetProperty("error", out _), done.ToString());
        Assert.Equal(0, (await c.ReturnAsync("query-block"))[0].GetProperty("inserted").GetProperty("backing_file_depth").GetInt32());
        await c.ReturnAsync("blockdev-del", """{"node-name": "d0"}""");
        Assert.Null(await BackingOfAsync(top));
        await AssertCleanAsync(top);
        await AssertSameAsync(reference, top);
    }

    [Fact]
    public async Task Stream_down_to_a_base_keeps_the_base()
    {
        await using var h = QmpServerHarness.Start();
        var (b, _, top, reference) = await BuildChainAsync(h.Dir);
        await using var c = await h.ConnectAsync();
        await c.ReturnAsync("blockdev-add", Qcow2Device("d0", top));
        Assert.Equal(("GenericError", "Base '/nonexistent' not found"), await c.ErrorAsync("block-stream", """{"device": "d0", "base": "/nonexistent"}"""));
        await c.ReturnAsync("block-stream", "{\"device\": \"d0\", \"base\": \"" + b + "\"}");
        await c.WaitEventAsync("BLOCK_JOB_COMPLETED");
        await c.ReturnAsync("blockdev-del", """{"node-name": "d0"}""");
        Assert.Equal(b, await BackingOfAsync(top));
        await AssertCleanAsync(top);
        await AssertSameAsync(reference, top);
    }

    [Fact]
    public async Task Commit_of_an_intermediate_image_into_its_base()
    {
        await using var h = QmpServerHarness.Start();
        var (b, m, top, reference) = await BuildChainAsync(h.Dir);
        await using var c = await h.ConnectAsync();
        await c.ReturnAsync("blockdev-add", Qcow2Device("d0", top));
        Assert.Equal(("GenericError", "Top image file /nope not found"), await c.ErrorAsync("block-commit", """{"device": "d0", "top": "/nope"}"""));
        Assert.Equal(("GenericError", "Invalid files for merge: top and base are the same"),
            await c.ErrorAsync("block-commit", "{\"device\": \"d0\", \"top\": \"" + b + "\", \"base\": \"" + b + "\"}"));
        await c.ReturnAsync("block-commit", "{\"device\": \"d0\", \"top\": \"" + m + "\"}");
        var done = await c.WaitEventAsync("BLOCK_JOB_COMPLETED");
        Assert.Equal("commit", done.GetProperty("data").GetProperty("type").GetString());
        Assert.False(done.GetProperty("data").TryGetProperty("error", out _), done.ToString());
        Assert.Equal(1, (await c.ReturnAsync("query-block"))[0].GetProperty("inserted").GetProperty("backing_file_depth").GetInt32());
        await c.ReturnAsync("blockdev-del", """{"node-name": "d0"}""");
        Assert.Equal(b, await BackingOfAsync(top));
        await AssertCleanAsync(b);
        await AssertCleanAsync(top);
        await AssertSameAsync(reference, top);
    }

    [Fact]
    public async Task Active_commit_becomes_ready_and_completes_into_the_base()
    {
        await using var h = QmpServerHarness.Start();
        var (b, _, top, reference) = await BuildChainAsync(h.Dir);
        await using var c = await h.ConnectAsync();
        await c.ReturnAsync("blockdev-add", Qcow2Device("d0", top));
        await c.ReturnAsync("block-commit", "{\"device\": \"d0\", \"top\": \"" + top + "\", \"base\": \"" + b + "\"}");
        var ready = await c.WaitEventAsync("BLOCK_JOB_READY");
        Assert.Equal("commit", ready.GetProperty("data").GetProperty("type").GetString());
        var dev = h.Graph.FindDevice("d0")!;
        var model = File.ReadAllBytes(reference);
        await dev.WriteAsync(100, new byte[] { 1, 2, 3, 4 });
        new byte[] { 1, 2, 3, 4 }.CopyTo(model, 100);
        await File.WriteAllBytesAsync(reference, model);
        await c.ReturnAsync("block-job-complete", """{"device": "d0"}""");
        await c.WaitEventAsync("BLOCK_JOB_COMPLETED");
        Assert.Equal(b, (await c.ReturnAsync("query-block"))[0].GetProperty("inserted").GetProperty("file").GetString());
        await c.ReturnAsync("blockdev-del", """{"node-name": "d0"}""");
        await AssertCleanAsync(b);
        await AssertSameAsync(reference, b);
    }

    [Fact]
    public async Task Snapshot_sync_puts_a_new_overlay_on_top_and_freezes_the_old_image()
    {
        await using var h = QmpServerHarness.Start();
        string disk = h.Dir.PatternFile("disk.raw", 1 << 20, seed: 4);
        byte[] before = File.ReadAllBytes(disk);
        string overlay = h.Dir.File("overlay.qcow2");
        await using var c = await h.ConnectAsync();
        await c.ReturnAsync("blockdev-add", QmpServerHarness.RawDevice("d0", disk));
        await c.ReturnAsync("blockdev-snapshot-sync", "{\"device\": \"d0\", \"snapshot-file\": \"" + overlay + "\", \"snapshot-node-name\": \"snap0\"}");
        var ins = (await c.ReturnAsync("query-block"))[0].GetProperty("inserted");
        Assert.Equal("qcow2", ins.GetProperty("drv").GetString());
        Assert.Equal("snap0", ins.GetProperty("node-name").GetString());
        Assert.Equal(disk, ins.GetProperty("backing_file").GetString());
        Assert.Equal(1, ins.GetProperty("backing_file_depth").GetInt32());

        var dev = h.Graph.FindDevice("d0")!;
        await dev.WriteAsync(4096, Enumerable.Repeat((byte)0x99, 8192).ToArray());
        byte[] after = (byte[])before.Clone();
        Array.Fill(after, (byte)0x99, 4096, 8192);
        await c.ReturnAsync("blockdev-del", """{"node-name": "d0"}""");

        Assert.Equal(before, File.ReadAllBytes(disk));
        Assert.Equal(disk, await BackingOfAsync(overlay));
        await AssertCleanAsync(overlay);
        string expected = h.Dir.File("expected.raw");
        await File.WriteAllBytesAsync(expected, after);
        await AssertSameAsync(expected, overlay);
        Assert.Equal(("DeviceNotFound", "Device 'nope' not found"),
            await c.ErrorAsync("blockdev-snapshot-sync", """{"device": "nope", "snapshot-file": "/tmp/x.qcow2"}"""));
    }

    [Fact]
    public async Task Mirror_sync_top_gives_the_target_the_same_backing_file()
    {
        await using var h = QmpServerHarness.Start();
        var (_, m, top, reference) = await BuildChainAsync(h.Dir);
        string target = h.Dir.File("target.qcow2");
        await using var c = await h.ConnectAsync();
        await c.ReturnAsync("blockdev-add", Qcow2Device("d0", top));
        await c.ReturnAsync("drive-mirror", "{\"device\": \"d0\", \"target\": \"" + target + "\", \"sync\": \"top\"}");
        await c.WaitEventAsync("BLOCK_JOB_READY");
        await c.ReturnAsync("block-job-complete", """{"device": "d0"}""");
        await c.WaitEventAsync("BLOCK_JOB_COMPLETED");
        Assert.Equal(target, (await c.ReturnAsync("query-block"))[0].GetProperty("inserted").GetProperty("file").GetString());
        await c.ReturnAsync("blockdev-del", """{"node-name": "d0"}""");
        Assert.Equal(m, await BackingOfAsync(target));
        await AssertCleanAsync(target);
        await AssertSameAsync(reference, target);
    }
}
