using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Curl;

/// <summary>
/// The http, https, ftp, ftps and tftp drivers against real servers on loopback: what we read over each equals
/// the served files (judged by qemu-img compare), a qcow2 image finds its backing file on the same server,
/// and the refusals (no byte ranges, an untrusted certificate) come as one clear line.
/// </summary>
public class CurlDriverTests
{
    /// <summary>A raw image and a qcow2 image over a raw backing file, with data in both layers.</summary>
    private static async Task<string> ServedImagesAsync(TempDir dir)
    {
        string root = Directory.CreateDirectory(dir.File("www")).FullName;
        dir.PatternFile("www/disk.raw", 3 << 20, seed: 7);
        string base_ = Path.Combine(root, "base.raw");
        dir.PatternFile("www/base.raw", 4 << 20, seed: 8);
        string top = Path.Combine(root, "top.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", top)).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 64k 200k", "-c", "write -z 1M 128k", top)).Ok();
        Assert.True(File.Exists(base_));
        return root;
    }

    /// <summary>Reads both images over the server at <paramref name="baseUrl"/> with img compare, convert and info.</summary>
    private static async Task AssertServesImagesAsync(TempDir dir, string root, string baseUrl)
    {
        string Name(string file) => baseUrl + file;

        Assert.Equal("Images are identical.\n", (await Tools.RunAsync("sharpblock", "img", "compare", Name("disk.raw"), Path.Combine(root, "disk.raw"))).Ok().Stdout);
        Assert.Equal("Images are identical.\n", (await Tools.RunAsync("sharpblock", "img", "compare", Name("top.qcow2"), Path.Combine(root, "top.qcow2"))).Ok().Stdout);

        string copy = dir.File("copy-" + Guid.NewGuid().ToString("N")[..6] + ".raw");
        (await Tools.RunAsync("sharpblock", "img", "convert", "-O", "raw", Name("top.qcow2"), copy)).Ok();
        var verdict = await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "qcow2", copy, Path.Combine(root, "top.qcow2"));
        Assert.Equal("Images are identical.\n", verdict.Ok().Stdout);

        string info = (await Tools.RunAsync("sharpblock", "img", "info", baseUrl + "top.qcow2")).Ok().Stdout;
        Assert.Contains("file format: qcow2\n", info, StringComparison.Ordinal);
        Assert.Contains($"backing file: base.raw (actual path: {baseUrl}base.raw)\n", info, StringComparison.Ordinal);
        Assert.Contains("disk size: unavailable\n", info, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Http_serves_raw_and_qcow2_with_its_backing_file()
    {
        using var dir = new TempDir();
        string root = await ServedImagesAsync(dir);
        using var server = await LoopbackServer.NginxAsync(dir, root);
        await AssertServesImagesAsync(dir, root, server.Url);
        // qemu-img's own curl driver agrees on what the server holds, and prints the same info lines.
        string ours = (await Tools.RunAsync("sharpblock", "img", "info", server.Url + "top.qcow2")).Ok().Stdout;
        string theirs = (await Tools.RunAsync("qemu-img", "info", server.Url + "top.qcow2")).Ok().Stdout;
        Assert.Equal(theirs, ours);
    }

    [Fact]
    public async Task Http_server_without_byte_ranges_is_refused_as_qemu_refuses_it()
    {
        using var dir = new TempDir();
        string root = await ServedImagesAsync(dir);
        using var server = await LoopbackServer.NginxAsync(dir, root, ranges: false);
        string url = server.Url + "disk.raw";
        string reason = (await Tools.RunAsync("sharpblock", "img", "info", url)).OneLineError();
        Assert.Equal($"Could not open '{url}': CURL: Error opening file: Server does not support 'range' (byte ranges).", reason);
        var qemu = await Tools.RunAsync("qemu-img", "info", url);
        Assert.Equal("qemu-img: " + reason + "\n", qemu.Stderr);
    }

    [Fact]
    public async Task Http_missing_file_and_dead_port_fail_with_curls_reason()
    {
        using var dir = new TempDir();
        string root = await ServedImagesAsync(dir);
        using var server = await LoopbackServer.NginxAsync(dir, root);
        string missing = server.Url + "nothere.raw";
        Assert.Equal($"Could not open '{missing}': CURL: Error opening file: The requested URL returned error: 404",
            (await Tools.RunAsync("sharpblock", "img", "info", missing)).OneLineError());
        server.Kill();
        string reason = (await Tools.RunAsync("sharpblock", "img", "info", server.Url + "disk.raw")).OneLineError();
        Assert.Contains("Couldn't connect to server", reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Https_checks_the_certificate_unless_sslverify_is_off()
    {
        using var dir = new TempDir();
        string root = await ServedImagesAsync(dir);
        var tls = await LoopbackServer.SelfSignedAsync(dir);
        using var server = await LoopbackServer.NginxAsync(dir, root, tls);
        string url = server.Url + "disk.raw";
        string reason = (await Tools.RunAsync("sharpblock", "img", "info", url)).OneLineError();
        Assert.StartsWith($"Could not open '{url}': CURL: Error opening file: SSL certificate problem: self-signed certificate", reason, StringComparison.Ordinal);
        // Only the named node gets sslverify off: a backing file found through an image opens with the defaults,
        // so the check runs on a raw image here (qemu-img behaves the same way).
        string dotted = $$"""json:{"file.driver": "https", "file.url": "{{url}}", "file.sslverify": "off"}""";
        Assert.Equal("Images are identical.\n", (await Tools.RunAsync("sharpblock", "img", "compare", dotted, Path.Combine(root, "disk.raw"))).Ok().Stdout);
        string copy = dir.File("copy.raw");
        (await Tools.RunAsync("sharpblock", "img", "convert", "-O", "raw", dotted, copy)).Ok();
        Assert.Equal("Images are identical.\n", (await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "raw", copy, Path.Combine(root, "disk.raw"))).Ok().Stdout);
        // The nested form with a JSON boolean means the same.
        string nested = $$$"""json:{"driver": "raw", "file": {"driver": "https", "url": "{{{url}}}", "sslverify": false, "readahead": 65536}}""";
        Assert.Equal("Images are identical.\n", (await Tools.RunAsync("sharpblock", "img", "compare", nested, Path.Combine(root, "disk.raw"))).Ok().Stdout);
    }

    [Fact]
    public async Task Ftp_serves_raw_and_qcow2_with_its_backing_file()
    {
        using var dir = new TempDir();
        string root = await ServedImagesAsync(dir);
        using var server = await LoopbackServer.VsftpdAsync(dir, root);
        await AssertServesImagesAsync(dir, root, server.Url);
    }

    [Fact]
    public async Task Ftps_serves_images_with_sslverify_off_and_refuses_the_certificate_with_it_on()
    {
        using var dir = new TempDir();
        string root = await ServedImagesAsync(dir);
        var tls = await LoopbackServer.SelfSignedAsync(dir);
        using var server = await LoopbackServer.VsftpdAsync(dir, root, tls);
        string reason = (await Tools.RunAsync("sharpblock", "img", "info", server.Url + "disk.raw")).OneLineError();
        Assert.Contains("SSL certificate problem: self-signed certificate", reason, StringComparison.Ordinal);
        string json = $$"""json:{"file.driver": "ftps", "file.url": "{{server.Url}}disk.raw", "file.sslverify": "off"}""";
        Assert.Equal("Images are identical.\n", (await Tools.RunAsync("sharpblock", "img", "compare", json, Path.Combine(root, "disk.raw"))).Ok().Stdout);
    }

    [Fact]
    public async Task Tftp_serves_raw_and_qcow2_with_its_backing_file()
    {
        using var dir = new TempDir();
        string root = await ServedImagesAsync(dir);
        using var server = await LoopbackServer.TftpdAsync(root);
        await AssertServesImagesAsync(dir, root, server.Url);
    }

    [Fact]
    public async Task An_odd_sized_file_is_whole_sectors_as_qemu_sizes_it_with_zeros_past_its_end()
    {
        using var dir = new TempDir();
        string root = Directory.CreateDirectory(dir.File("www")).FullName;
        string file = dir.PatternFile("www/odd.raw", 1000003, seed: 5);
        using var server = await LoopbackServer.NginxAsync(dir, root);
        string url = server.Url + "odd.raw";
        foreach (var args in new[] { new[] { "info", url }, ["info", "-f", "raw", url] })
            Assert.Equal((await Tools.RunAsync("qemu-img", args)).Ok().Stdout, (await Tools.RunAsync("sharpblock", ["img", .. args])).Ok().Stdout);

        // The protocol node itself, without raw on top, is sized in whole sectors as in QEMU.
        await using var h = await QmpHarness.StartAsync();
        await h.Client.ReturnAsync("blockdev-add", $$$$"""{"driver": "http", "node-name": "web", "read-only": true, "url": "{{{{url}}}}"}""");
        var nodes = await h.Client.ReturnAsync("query-named-block-nodes");
        Assert.Equal(1000448, nodes[0].GetProperty("image").GetProperty("virtual-size").GetInt64());
        var node = h.Graph.FindNode("web")!;
        byte[] tail = new byte[1024];
        await node.ReadAsync(1000448 - 1024, tail);
        byte[] expected = new byte[1024];
        File.ReadAllBytes(file).AsSpan(1000448 - 1024).CopyTo(expected);
        Assert.Equal(expected, tail);

        string ours = dir.File("ours.raw"), theirs = dir.File("theirs.raw");
        (await Tools.RunAsync("sharpblock", "img", "convert", "-f", "raw", "-O", "raw", url, ours)).Ok();
        (await Tools.RunAsync("qemu-img", "convert", "-f", "raw", "-O", "raw", url, theirs)).Ok();
        Assert.Equal(File.ReadAllBytes(theirs), File.ReadAllBytes(ours));
        Assert.Equal(1000448, new FileInfo(ours).Length);
    }
}
