using System.Text.Json;
using SharpBlock.Interop.Tests.Nbd;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Img;

/// <summary>
/// NBD URLs as image names of img info, convert and compare, against our own daemon (the in-process QMP+NBD
/// harness) and against qemu-nbd: what we print is what qemu-img prints, and what we copy is what it copies.
/// </summary>
public class ImgNbdUrlTests
{
    private static Task<Tools.Result> Ours(params string[] args) => Tools.RunAsync("sharpblock", ["img", .. args]);

    private static Task<Tools.Result> Qemu(params string[] args) => Tools.RunAsync("qemu-img", args);

    /// <summary>A 16 MiB qcow2 with data, written zeros and holes, so convert has every kind of block to copy.</summary>
    private static async Task<string> ImageAsync(TempDir dir)
    {
        string path = dir.File("disk.qcow2");
        (await Qemu("create", "-f", "qcow2", path, "16M")).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 1M", "-c", "write -z 2M 1M", "-c", "write -P 0xa5 5M 64k", path)).Ok();
        return path;
    }

    /// <summary>info (human and json), convert to raw and qcow2, and compare: ours against qemu-img's on one URL.</summary>
    private static async Task AssertSameAsQemuImgAsync(TempDir dir, string url)
    {
        foreach (var output in new[] { "--output=human", "--output=json" })
        {
            var theirs = (await Qemu("info", output, url)).Ok().Stdout;
            var ours = (await Ours("info", output, url)).Ok().Stdout;
            if (output == "--output=json")
                AssertSameJson(theirs, ours);
            else
                Assert.Equal(theirs, ours);
        }

        foreach (var fmt in new[] { "raw", "qcow2" })
        {
            string a = dir.File("ours." + fmt), b = dir.File("theirs." + fmt);
            (await Ours("convert", "-O", fmt, url, a)).Ok();
            (await Qemu("convert", "-O", fmt, url, b)).Ok();
            (await Qemu("compare", "-f", fmt, "-F", fmt, a, b)).Ok();
        }

        Assert.Equal(await File.ReadAllBytesAsync(dir.File("theirs.raw")), await File.ReadAllBytesAsync(dir.File("ours.raw")));
        // Against qemu-img's copy: the image file itself may be held by the server that exports it.
        Assert.Equal("Images are identical.\n", (await Ours("compare", url, dir.File("theirs.raw"))).Ok().Stdout);
    }

    // Members and values are qemu-img's; their order is the codec's, as for every other info --output=json.
    private static void AssertSameJson(string theirs, string ours)
    {
        static SortedDictionary<string, string> Members(string json)
        {
            using var doc = JsonDocument.Parse(json);
            var d = new SortedDictionary<string, string>(StringComparer.Ordinal);
            foreach (var p in doc.RootElement.EnumerateObject())
                d[p.Name] = p.Value.GetRawText();
            return d;
        }

        Assert.Equal(Members(theirs), Members(ours));
    }

    /// <summary>Device d0 of the daemon: the image as qcow2.</summary>
    private static async Task AddImageAsync(QmpHarness h)
    {
        string image = await ImageAsync(h.Dir);
        await h.Client.ReturnAsync("blockdev-add", $"{{\"driver\": \"qcow2\", \"id\": \"d0\", \"file\": {{\"driver\": \"file\", \"filename\": {JsonSerializer.Serialize(image)}}}}}");
    }

    [Fact]
    public async Task Urls_of_our_daemons_exports_read_as_qemu_img_reads_them()
    {
        await using var h = await QmpHarness.StartAsync();
        await AddImageAsync(h);
        await h.StartNbdAsync();
        await h.ExportAsync("d0", writable: false);

        await AssertSameAsQemuImgAsync(h.Dir, h.Url("d0"));
        Assert.Equal((await Qemu("info", $"nbd:unix:{h.NbdSocket}:exportname=d0")).Ok().Stdout,
            (await Ours("info", $"nbd:unix:{h.NbdSocket}:exportname=d0")).Ok().Stdout);
    }

    [Fact]
    public async Task Urls_of_a_tcp_export_read_as_qemu_img_reads_them()
    {
        await using var h = await QmpHarness.StartAsync();
        await AddImageAsync(h);
        await h.Client.ReturnAsync("nbd-server-start", "{\"addr\":{\"type\":\"inet\",\"data\":{\"host\":\"127.0.0.1\",\"port\":\"0\"}}}");
        await h.ExportAsync("d0", writable: false);
        int port = h.Server.Nbd.TcpEndPoint!.Port;

        await AssertSameAsQemuImgAsync(h.Dir, $"nbd://127.0.0.1:{port}/d0");
    }

    [Fact]
    public async Task Urls_of_qemu_nbd_exports_read_as_qemu_img_reads_them()
    {
        using var dir = new TempDir();
        string image = await ImageAsync(dir);
        // Read-only and shared, so qemu-img and we may hold connections to it in turn and at once.
        await using var guest = await QemuNbd.StartAsync(dir.File("q.sock"), "-r", "-t", "--shared=4", "-f", "qcow2", "-x", "d0", image);
        await AssertSameAsQemuImgAsync(dir, $"nbd+unix:///d0?socket={guest.Socket}");
    }

    [Fact]
    public async Task A_qcow2_file_served_raw_is_probed_through_the_export()
    {
        using var dir = new TempDir();
        string image = await ImageAsync(dir);
        await using var file = await QemuNbd.StartAsync(dir.File("r.sock"), "-r", "-t", "--shared=4", "-f", "raw", image);
        string url = $"nbd+unix://?socket={file.Socket}";
        string theirs = (await Qemu("info", url)).Ok().Stdout;
        Assert.Contains("file format: qcow2\n", theirs, StringComparison.Ordinal);
        Assert.Equal(theirs, (await Ours("info", url)).Ok().Stdout);
        Assert.Equal("Images are identical.\n", (await Ours("compare", url, image)).Ok().Stdout);
    }

    [Theory]
    [InlineData("nbd:///d0")]
    [InlineData("nbd+unix:///d0")]
    public async Task Malformed_urls_fail_as_in_qemu_img(string url)
    {
        var theirs = await Qemu("info", url);
        var ours = await Ours("info", url);
        Assert.Equal((1, theirs.Stderr.Replace("qemu-img: ", "", StringComparison.Ordinal)),
            (ours.ExitCode, ours.Stderr.Replace("sharpblock: ", "", StringComparison.Ordinal)));
    }
}
