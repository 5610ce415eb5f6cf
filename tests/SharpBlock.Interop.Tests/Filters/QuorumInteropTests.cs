using System.Text.Json;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Filters;

/// <summary>
/// Quorum and blkverify devices made over QMP from real files (one child behind a blkdebug filter), exported
/// over NBD and read and written by qemu-io, nbdinfo and nbdcopy; qemu-img judges the children afterwards.
/// </summary>
public class QuorumInteropTests
{
    private static string F(string path) => "{\"driver\": \"file\", \"filename\": " + JsonSerializer.Serialize(path) + "}";

    private static async Task<string> RawAsync(TempDir dir, string name, params string[] writes)
    {
        string path = dir.File(name);
        (await Tools.RunAsync("qemu-img", "create", "-f", "raw", path, "4M")).Ok();
        var args = new List<string> { "-f", "raw" };
        foreach (var w in writes)
            args.AddRange(["-c", w]);
        args.Add(path);
        (await Tools.RunAsync("qemu-io", args)).Ok();
        return path;
    }

    [Fact]
    public async Task Quorum_export_votes_reports_and_replicates_writes()
    {
        await using var d = await QmpHarness.StartAsync();
        string c0 = await RawAsync(d.Dir, "c0.raw", "write -P 0xab 0 64k");
        // c1 disagrees at 0 and at 2M; c2 fails every request touching 2M once a read has armed its rule.
        string c1 = await RawAsync(d.Dir, "c1.raw", "write -P 0xee 0 64k", "write -P 0xee 2M 4k");
        string c2 = await RawAsync(d.Dir, "c2.raw", "write -P 0xab 0 64k");
        string bad = "{\"driver\": \"blkdebug\", \"node-name\": \"c2\", \"image\": " + F(c2)
            + ", \"inject-error\": [{\"event\": \"read_aio\", \"sector\": 4096}]}";
        await d.Client.ReturnAsync("blockdev-add", "{\"options\": {\"driver\": \"quorum\", \"id\": \"q0\", \"vote-threshold\": 2, \"children\": ["
            + "{\"driver\": \"raw\", \"node-name\": \"c0\", \"file\": " + F(c0) + "},"
            + "{\"driver\": \"raw\", \"node-name\": \"c1\", \"file\": " + F(c1) + "},"
            + "{\"driver\": \"raw\", \"node-name\": \"r2\", \"file\": " + bad + "}]}}");
        var dev = await d.QueryDeviceAsync("q0");
        Assert.Equal("quorum", dev.GetProperty("inserted").GetProperty("drv").GetString());
        await d.StartNbdAsync();
        await d.ExportAsync("q0", writable: true);

        Assert.Equal("4194304", (await Tools.RunAsync("nbdinfo", "--size", d.Url("q0"))).Ok().Stdout.Trim());

        // Two of three say 0xab: the read passes and c1 is named, without an error.
        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "read -P 0xab 0 64k", d.Url("q0"))).Ok();
        var e = await d.Client.WaitEventAsync("QUORUM_REPORT_BAD");
        var data = e.GetProperty("data");
        Assert.Equal("c1", data.GetProperty("node-name").GetString());
        Assert.False(data.TryGetProperty("error", out _));
        Assert.Equal((0, 128), (data.GetProperty("sector-num").GetInt64(), data.GetProperty("sectors-count").GetInt64()));

        // A write lands on all three children.
        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 0x5c 1M 64k", d.Url("q0"))).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "read -P 0x5c 1M 64k", d.Url("q0"))).Ok();

        // At 2M: c0 reads zeros, c1 0xee and c2 fails, so no two agree.
        var r = await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "read 2M 4k", d.Url("q0"));
        Assert.Contains("Input/output error", r.Stdout + r.Stderr, StringComparison.Ordinal);
        var fail = (await d.Client.WaitEventAsync("QUORUM_FAILURE")).GetProperty("data");
        Assert.Equal("q0", fail.GetProperty("reference").GetString());
        Assert.Equal((4096, 8), (fail.GetProperty("sector-num").GetInt64(), fail.GetProperty("sectors-count").GetInt64()));
        // The report on r2 (the raw node over c2) came within a second of c1's: the rate limit sent it a second later.
        var late = (await d.Client.WaitEventAsync("QUORUM_REPORT_BAD")).GetProperty("data");
        Assert.Equal("r2", late.GetProperty("node-name").GetString());
        Assert.Equal("Input/output error", late.GetProperty("error").GetString());

        // The daemon kept serving; the replicas agree wherever c1 was not made different.
        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "read -P 0xab 0 64k", d.Url("q0"))).Ok();
        await d.Client.ReturnAsync("nbd-server-stop");
        (await Tools.RunAsync("qemu-img", "compare", "-U", "-f", "raw", "-F", "raw", c0, c2)).Ok();
        (await Tools.RunAsync("qemu-io", "-r", "-U", "-f", "raw", "-c", "read -P 0x5c 1M 64k", c1)).Ok();
    }

    [Fact]
    public async Task Blkverify_export_reads_what_both_hold_and_fails_where_they_differ()
    {
        await using var d = await QmpHarness.StartAsync();
        string raw = await RawAsync(d.Dir, "ref.raw", "write -P 0x31 0 1M", "write -P 0x32 3M 64k");
        string test = d.Dir.File("test.qcow2");
        (await Tools.RunAsync("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, test)).Ok();
        // Now the reference differs from the image under test at sector 6145 (3M + 512).
        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 0x99 3145728 512", raw)).Ok();
        await d.Client.ReturnAsync("blockdev-add", "{\"options\": {\"driver\": \"blkverify\", \"id\": \"v0\","
            + " \"test\": {\"driver\": \"qcow2\", \"file\": " + F(test) + "},"
            + " \"raw\": {\"driver\": \"raw\", \"file\": " + F(raw) + "}}}");
        await d.StartNbdAsync();
        await d.ExportAsync("v0", writable: true);

        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "read -P 0x31 0 1M", "-c", "write -P 0x44 2M 128k", d.Url("v0"))).Ok();
        var r = await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "read 3M 64k", d.Url("v0"));
        Assert.Contains("Input/output error", r.Stdout + r.Stderr, StringComparison.Ordinal);
        var io = (await d.Client.WaitEventAsync("BLOCK_IO_ERROR")).GetProperty("data");
        Assert.Equal("v0", io.GetProperty("device").GetString());
        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "read -P 0x44 2M 128k", d.Url("v0"))).Ok();

        await d.Client.ReturnAsync("nbd-server-stop");
        (await Tools.RunAsync("qemu-img", "check", "-U", test)).Ok();
        var cmp = await Tools.RunAsync("qemu-img", "compare", "-U", "-f", "qcow2", "-F", "raw", test, raw);
        Assert.Contains("Content mismatch at offset 3145728", cmp.Stdout, StringComparison.Ordinal);
        (await Tools.RunAsync("qemu-io", "-r", "-U", "-f", "qcow2", "-c", "read -P 0x44 2M 128k", test)).Ok();
    }
}
