using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Bitmaps;

/// <summary>
/// `sharpblock img bitmap` against `qemu-img bitmap` 7.2: the same command lines on twin images give the same
/// messages and exit codes, and the images end with the same bitmaps (qemu-img info) and clean checks.
/// </summary>
public class ImgBitmapTests
{
    private static readonly string[] Lines =
    [
        "X b", "--add X", "--add -g 1000 X b", "--remove X nope", "--clear -g 512 X b", "-b x --add X b",
        "--add -F raw X b", "--merge nope X b", "--add X b", "--add X b", "--add --disable X c", "--add -g 4096 X d",
        "--merge c X d", "--merge a --enable X c", "--enable X c", "--disable --enable --disable X d", "--clear X c",
        "--add X gone", "--remove X gone", "--merge a X a",
    ];

    private static string Normal(Tools.Result r, string tool) =>
        $"{r.ExitCode}: {(r.Stdout + r.Stderr).Replace(tool + ":", "TOOL:", StringComparison.Ordinal)}";

    [Fact]
    public async Task Bitmap_command_lines_do_what_qemu_img_does()
    {
        using var dir = new TempDir();
        string theirs = dir.File("q.qcow2"), ours = dir.File("s.qcow2");
        foreach (string f in new[] { theirs, ours })
        {
            (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", f, "4M")).Ok();
            (await Tools.RunAsync("qemu-img", "bitmap", "--add", f, "a")).Ok();
            (await Tools.RunAsync("qemu-io", "-c", "write 64k 64k", "-c", "write 1M 1", f)).Ok();
        }

        foreach (string line in Lines)
        {
            var q = await Tools.RunAsync("qemu-img", ["bitmap", .. line.Replace("X", theirs, StringComparison.Ordinal).Split(' ')]);
            var s = await Tools.RunAsync("sharpblock", ["img", "bitmap", .. line.Replace("X", ours, StringComparison.Ordinal).Split(' ')]);
            Assert.Equal(Normal(q, "qemu-img").Replace(theirs, "IMG", StringComparison.Ordinal), Normal(s, "sharpblock").Replace(ours, "IMG", StringComparison.Ordinal));
        }

        string Info(Tools.Result r, string f) => r.Stdout.Replace(f, "IMG", StringComparison.Ordinal).Split('\n').Where(l => !l.StartsWith("disk size", StringComparison.Ordinal)).Aggregate("", (x, y) => x + y + "\n");
        Assert.Equal(Info((await Tools.RunAsync("qemu-img", "info", theirs)).Ok(), theirs), Info((await Tools.RunAsync("qemu-img", "info", ours)).Ok(), ours));
        Assert.Contains("No errors were found on the image.", (await Tools.RunAsync("qemu-img", "check", ours)).Ok().Stdout, StringComparison.Ordinal);

        // The merged bits are the same too, as QEMU reads them.
        var counts = new List<string>();
        foreach (string f in new[] { theirs, ours })
        {
            await using var qsd = await QemuStorageDaemon.StartAsync(dir.File(Path.GetFileName(f) + ".sock"));
            await qsd.Client.ReturnAsync("blockdev-add", $"{{\"driver\":\"qcow2\",\"node-name\":\"n\",\"file\":{{\"driver\":\"file\",\"filename\":\"{f}\"}}}}");
            var nodes = await qsd.Client.ReturnAsync("query-named-block-nodes");
            foreach (var n in nodes.EnumerateArray())
            {
                if (n.GetProperty("node-name").GetString() == "n")
                    counts.Add(n.GetProperty("dirty-bitmaps").GetRawText());
            }
        }

        Assert.Contains("131072", counts[0], StringComparison.Ordinal);
        Assert.Equal(counts[0], counts[1]);
    }
}
