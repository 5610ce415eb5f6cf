using SharpBlock.Interop.Tests.Vdi;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Qed;

/// <summary>QED images judged by QEMU 7.2: qemu's images read through us, ours checked and compared by qemu-img.</summary>
public class QedInteropTests
{
    private static Task<Tools.Result> QemuIo(string img, params string[] cmds) => ImageInteropChecks.QemuIoAsync("qed", img, cmds);

    private static async Task AssertCheckLikeQemuAsync(string img, params string[] extra)
    {
        var ours = await Tools.RunAsync("sharpblock", ["img", "check", .. extra, "--output=json", img]);
        var theirs = await Tools.RunAsync("qemu-img", ["check", .. extra, "--output=json", img]);
        Assert.Equal(theirs.ExitCode, ours.ExitCode);
        Assert.Equal(ImageInteropChecks.Members(theirs.Stdout), ImageInteropChecks.Members(ours.Stdout));
        Assert.Equal((await Tools.RunAsync("qemu-img", ["check", .. extra, img])).Stdout, (await Tools.RunAsync("sharpblock", ["img", "check", .. extra, img])).Stdout);
    }

    [Theory]
    [InlineData("cluster_size=65536")]
    [InlineData("cluster_size=4096,table_size=2")]
    [InlineData("cluster_size=1M,table_size=16")]
    [InlineData("table_size=2")]
    public async Task Images_qemu_creates_and_fills_read_byte_for_byte(string options)
    {
        using var dir = new TempDir();
        string img = dir.File("qemu.qed");
        (await Tools.RunAsync("qemu-img", "create", "-f", "qed", "-o", options, img, "9437696")).Ok();
        // Data, whole-cluster zeros (zero entries), a cluster's tail, the last sector.
        (await QemuIo(img, "write -P 0x5a 0 100k", "write -z 1M 512k", "write -P 0x21 3000k 1500k", "write -P 0x7e 9436672 512")).Ok();
        await ImageInteropChecks.AssertReadsLikeQemuAsync(dir, img, "qed");
        await ImageInteropChecks.AssertInfoLikeQemuAsync(img, null);
        await AssertCheckLikeQemuAsync(img);
    }

    [Theory]
    [InlineData("qed", "")]
    [InlineData("raw", "")]
    [InlineData("qed", "cluster_size=4096")]
    public async Task Backed_images_qemu_makes_read_through_their_backing_file(string backingFormat, string options)
    {
        using var dir = new TempDir();
        string raw = dir.File("base.raw");
        await ImageInteropChecks.MixedRawAsync(raw, 6, seed: 5);
        string backing = raw;
        if (backingFormat == "qed")
        {
            backing = dir.File("base.qed");
            (await Tools.RunAsync("qemu-img", "convert", "-f", "raw", "-O", "qed", raw, backing)).Ok();
        }

        string img = dir.File("top.qed");
        var args = new List<string> { "create", "-f", "qed", "-b", Path.GetFileName(backing), "-F", backingFormat };
        if (options.Length > 0)
            args.AddRange(["-o", options]);
        args.AddRange([img, "7M"]);
        (await Tools.RunAsync("qemu-img", args)).Ok();
        // Partial clusters copy the rest from the backing file; the image is longer than its backing file.
        (await QemuIo(img, "write -P 0x66 4097 9000", "write -z 2M 64k", "write -P 0x42 6M 1M")).Ok();
        await ImageInteropChecks.AssertReadsLikeQemuAsync(dir, img, "qed");
        await ImageInteropChecks.AssertInfoLikeQemuAsync(img, null);

        // Our writes on top of the backed image agree with qemu's reading of it.
        string expect = dir.File("expect.raw");
        (await Tools.RunAsync("qemu-img", "convert", "-O", "raw", img, expect)).Ok();
        await ImageInteropChecks.AssertMixedWritesAgreeAsync("qed", img, expect, 70000);
        await AssertCheckLikeQemuAsync(img);
    }

    [Theory]
    [InlineData("cluster_size=65536")]
    [InlineData("cluster_size=4096,table_size=2")]
    [InlineData("cluster_size=2M,table_size=2")]
    public async Task Images_we_create_and_fill_pass_qemu_img_check_and_compare(string options)
    {
        using var dir = new TempDir();
        string raw = dir.File("mixed.raw");
        await ImageInteropChecks.MixedRawAsync(raw, 8, seed: 3);
        string img = dir.File("ours.qed");
        (await Tools.RunAsync("sharpblock", "img", "convert", "-f", "raw", "-O", "qed", "-o", options, raw, img)).Ok();
        var check = await Tools.RunAsync("qemu-img", "check", img);
        Assert.True(check.ExitCode == 0, check.Stdout + check.Stderr);
        Assert.Contains("No errors were found on the image.", check.Stdout, StringComparison.Ordinal);
        (await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "qed", raw, img)).Ok();
        await ImageInteropChecks.AssertInfoLikeQemuAsync(img, null);
        await ImageInteropChecks.AssertReadsLikeQemuAsync(dir, img, "qed");
        await AssertCheckLikeQemuAsync(img);

        await ImageInteropChecks.AssertMixedWritesAgreeAsync("qed", img, raw, 1 << 20);
        Assert.Equal(0, (await Tools.RunAsync("qemu-img", "check", img)).ExitCode);
        // A clean close leaves the need-check bit clear, as qemu-img info's dirty flag shows.
        Assert.Contains("\"dirty-flag\": false", (await Tools.RunAsync("qemu-img", "info", "--output=json", img)).Ok().Stdout, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("10M")]
    [InlineData("1000")]
    [InlineData("0")]
    [InlineData("10M", "-o", "cluster_size=4096,table_size=2")]
    [InlineData("10M", "-b", "BASE", "-F", "qed")]
    [InlineData("10M", "-b", "BASE", "-F", "raw")]
    public async Task Img_create_writes_qemus_layout_and_line(string size, params string[] options)
    {
        using var dir = new TempDir();
        (await Tools.RunAsync("qemu-img", "create", "-f", "qed", dir.File("base.qed"), "1M")).Ok();
        string ours = dir.File("ours.qed"), theirs = dir.File("theirs.qed");
        options = [.. options.Select(o => o == "BASE" ? dir.File("base.qed") : o)];
        var a = await Tools.RunAsync("sharpblock", ["img", "create", "-f", "qed", .. options, ours, size]);
        var b = await Tools.RunAsync("qemu-img", ["create", "-f", "qed", .. options, theirs, size]);
        Assert.Equal(b.ExitCode, a.ExitCode);
        Assert.Equal(b.Stdout.Replace(theirs, "X", StringComparison.Ordinal), a.Stdout.Replace(ours, "X", StringComparison.Ordinal));
        Assert.Equal(await File.ReadAllBytesAsync(theirs), await File.ReadAllBytesAsync(ours));
    }

    [Fact]
    public async Task Probing_round_trips_resize_and_refusals_match_qemu_img()
    {
        using var dir = new TempDir();
        string img = dir.File("p.qed");
        (await Tools.RunAsync("qemu-img", "create", "-f", "qed", img, "4M")).Ok();
        var info = (await Tools.RunAsync("sharpblock", "img", "info", "--output=json", img)).Ok();
        Assert.Contains("\"format\": \"qed\"", info.Stdout, StringComparison.Ordinal);

        await ImageInteropChecks.AssertRoundTripAsync(dir, "qed");
        await ImageInteropChecks.AssertRoundTripAsync(dir, "qed", "-o", "cluster_size=4096");

        async Task BothRefuse(int code, params string[] args)
        {
            var q = await Tools.RunAsync("qemu-img", args);
            var s = await Tools.RunAsync("sharpblock", ["img", .. args]);
            Assert.Equal(code, q.ExitCode);
            Assert.Equal(q.Stderr.Trim().Replace("qemu-img: ", "", StringComparison.Ordinal), s.OneLineError(exitCode: code));
        }

        await BothRefuse(1, "measure", "-O", "qed", "--size", "10M");
        await BothRefuse(1, "resize", img, "+1000");
        (await Tools.RunAsync("sharpblock", "img", "resize", img, "8M")).Ok();
        Assert.Contains("\"virtual-size\": 8388608", (await Tools.RunAsync("qemu-img", "info", "--output=json", img)).Ok().Stdout, StringComparison.Ordinal);
        Assert.Equal(0, (await Tools.RunAsync("qemu-img", "check", img)).ExitCode);
        // QEMU 7.2 creates table_size=1 images but cannot open them (its table offset check); neither can we.
        string one = dir.File("one.qed");
        (await Tools.RunAsync("sharpblock", "img", "create", "-f", "qed", "-o", "table_size=1", one, "1M")).Ok();
        await BothRefuse(1, "info", one);
        foreach (string bad in (string[])["cluster_size=1000", "table_size=3", "cluster_size=2M,table_size=16"])
        {
            string p = dir.File("bad.qed");
            var q = await Tools.RunAsync("qemu-img", "create", "-f", "qed", "-o", bad, p, "1M");
            var s = await Tools.RunAsync("sharpblock", "img", "create", "-f", "qed", "-o", bad, p, "1M");
            Assert.Equal(q.Stdout.Replace(p, "X", StringComparison.Ordinal), s.Stdout.Replace(p, "X", StringComparison.Ordinal));
            Assert.Equal(q.Stderr.Trim().Replace("qemu-img: " + p + ": ", "", StringComparison.Ordinal), s.OneLineError());
        }
    }

    [Fact]
    public async Task Leaks_and_the_need_check_bit_are_reported_and_repaired_as_qemu_img_does()
    {
        using var dir = new TempDir();
        string img = dir.File("leaky.qed");
        (await Tools.RunAsync("qemu-img", "create", "-f", "qed", img, "4M")).Ok();
        (await QemuIo(img, "write -P 1 0 64k")).Ok();
        // Two clusters past the end that nothing points at, and the need-check bit of an unclean close.
        byte[] b = await File.ReadAllBytesAsync(img);
        Array.Resize(ref b, b.Length + (2 << 16));
        b[0x10] |= 2;
        await File.WriteAllBytesAsync(img, b);
        await ImageInteropChecks.AssertInfoLikeQemuAsync(img, null);
        await AssertCheckLikeQemuAsync(img);
        string copy = dir.File("copy.qed");
        File.Copy(img, copy);
        await AssertCheckLikeQemuAsync(img, "-r", "leaks");
        var theirs = await Tools.RunAsync("qemu-img", "check", "-r", "all", copy);
        var ours = await Tools.RunAsync("sharpblock", "img", "check", "-r", "all", img);
        Assert.Equal(theirs.ExitCode, ours.ExitCode);
        Assert.Equal(await File.ReadAllBytesAsync(copy), await File.ReadAllBytesAsync(img));
    }
}
