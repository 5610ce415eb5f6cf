using System.Buffers.Binary;
using SharpBlock.Drivers.Format.Vdi;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Vdi;

/// <summary>VDI images judged by QEMU 7.2: qemu's images read through us, ours checked and compared by qemu-img.</summary>
public class VdiInteropTests
{
    private static Task<Tools.Result> QemuIo(string img, params string[] cmds) => ImageInteropChecks.QemuIoAsync("vdi", img, cmds);

    [Theory]
    [InlineData("static=off")]
    [InlineData("static=on")]
    public async Task Images_qemu_creates_and_fills_read_byte_for_byte(string options)
    {
        using var dir = new TempDir();
        string img = dir.File("qemu.vdi");
        (await Tools.RunAsync("qemu-img", "create", "-f", "vdi", "-o", options, img, "9437696")).Ok();
        // Data, zeros written as zeros (QEMU's vdi has no zero write: it allocates), a block's tail, the last sector.
        (await QemuIo(img, "write -P 0x5a 0 100k", "write -z 1M 512k", "write -P 0x21 3000k 1500k", "write -P 0x7e 9436672 512")).Ok();
        await ImageInteropChecks.AssertReadsLikeQemuAsync(dir, img, "vdi");
        await ImageInteropChecks.AssertInfoLikeQemuAsync(img, null);
        var ours = (await Tools.RunAsync("sharpblock", "img", "check", "--output=json", img)).Ok();
        var theirs = (await Tools.RunAsync("qemu-img", "check", "--output=json", img)).Ok();
        Assert.Equal(ImageInteropChecks.Members(theirs.Stdout), ImageInteropChecks.Members(ours.Stdout));
        Assert.Equal((await Tools.RunAsync("qemu-img", "check", img)).Stdout, (await Tools.RunAsync("sharpblock", "img", "check", img)).Stdout);
    }

    [Theory]
    [InlineData("static=off")]
    [InlineData("static=on")]
    public async Task Images_we_create_and_fill_pass_qemu_img_check_and_compare(string options)
    {
        using var dir = new TempDir();
        string raw = dir.File("mixed.raw");
        await ImageInteropChecks.MixedRawAsync(raw, 8, seed: 3);
        string img = dir.File("ours.vdi");
        (await Tools.RunAsync("sharpblock", "img", "convert", "-f", "raw", "-O", "vdi", "-o", options, raw, img)).Ok();
        var check = await Tools.RunAsync("qemu-img", "check", img);
        Assert.True(check.ExitCode == 0, check.Stdout + check.Stderr);
        Assert.Contains("No errors were found on the image.", check.Stdout, StringComparison.Ordinal);
        (await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "vdi", raw, img)).Ok();
        await ImageInteropChecks.AssertInfoLikeQemuAsync(img, null);
        await ImageInteropChecks.AssertReadsLikeQemuAsync(dir, img, "vdi");

        // qemu-io's writes on our image, then ours (through the library) on top, still agree with a model disk.
        await ImageInteropChecks.AssertMixedWritesAgreeAsync("vdi", img, raw, 1 << 20);
        Assert.Equal(0, (await Tools.RunAsync("qemu-img", "check", img)).ExitCode);
    }

    [Theory]
    [InlineData("off", "10M")]
    [InlineData("on", "10M")]
    [InlineData("off", "1000")]
    [InlineData("on", "0")]
    public async Task Img_create_writes_qemus_layout_and_line(string isStatic, string size)
    {
        using var dir = new TempDir();
        string ours = dir.File("ours.vdi"), theirs = dir.File("theirs.vdi");
        var a = (await Tools.RunAsync("sharpblock", "img", "create", "-f", "vdi", "-o", "static=" + isStatic, ours, size)).Ok();
        var b = (await Tools.RunAsync("qemu-img", "create", "-f", "vdi", "-o", "static=" + isStatic, theirs, size)).Ok();
        Assert.Equal(b.Stdout.Replace(theirs, "X", StringComparison.Ordinal), a.Stdout.Replace(ours, "X", StringComparison.Ordinal));
        byte[] x = await File.ReadAllBytesAsync(ours), y = await File.ReadAllBytesAsync(theirs);
        Assert.Equal(y.Length, x.Length);
        // Only the two random UUIDs (image and last snapshot) may differ.
        x.AsSpan(VdiHeader.UuidImageOffset, 32).Clear();
        y.AsSpan(VdiHeader.UuidImageOffset, 32).Clear();
        Assert.True(x.AsSpan().SequenceEqual(y));
    }

    [Fact]
    public async Task Probing_round_trips_and_refusals_match_qemu_img()
    {
        using var dir = new TempDir();
        string img = dir.File("p.vdi");
        (await Tools.RunAsync("qemu-img", "create", "-f", "vdi", img, "4M")).Ok();
        var info = (await Tools.RunAsync("sharpblock", "img", "info", "--output=json", img)).Ok();
        Assert.Contains("\"format\": \"vdi\"", info.Stdout, StringComparison.Ordinal);

        await ImageInteropChecks.AssertRoundTripAsync(dir, "vdi");
        await ImageInteropChecks.AssertRoundTripAsync(dir, "vdi", "-o", "static=on");

        async Task BothRefuse(int code, params string[] args)
        {
            var q = await Tools.RunAsync("qemu-img", args);
            var s = await Tools.RunAsync("sharpblock", ["img", .. args]);
            Assert.Equal(code, q.ExitCode);
            Assert.Equal(q.Stderr.Trim().Replace("qemu-img: ", "", StringComparison.Ordinal), s.OneLineError(exitCode: code));
        }

        await BothRefuse(1, "resize", img, "8M");
        await BothRefuse(1, "measure", "-O", "vdi", "--size", "10M");
        await BothRefuse(63, "check", "-r", "all", img);
        await BothRefuse(63, "check", "-r", "leaks", img);
        string big = dir.File("big.vdi");
        var q = await Tools.RunAsync("qemu-img", "create", "-f", "vdi", big, "562949819203585");
        var s = await Tools.RunAsync("sharpblock", "img", "create", "-f", "vdi", big, "562949819203585");
        Assert.Equal(q.Stdout.Replace(big, "X", StringComparison.Ordinal), s.Stdout.Replace(big, "X", StringComparison.Ordinal));
        Assert.Equal(q.Stderr.Trim().Replace("qemu-img: " + big + ": ", "", StringComparison.Ordinal), s.OneLineError());
        q = await Tools.RunAsync("qemu-img", "create", "-f", "vdi", "-b", img, "-F", "vdi", big);
        Assert.Equal(q.Stderr.Trim().Replace("qemu-img: " + big + ": ", "", StringComparison.Ordinal), (await Tools.RunAsync("sharpblock", "img", "create", "-f", "vdi", "-b", img, "-F", "vdi", big)).OneLineError());
    }

    [Fact]
    public async Task An_odd_disk_size_is_rounded_up_as_qemu_does()
    {
        // VBoxManage convertfromraw can record a size that is not whole sectors; QEMU rounds it up.
        using var dir = new TempDir();
        string img = dir.File("odd.vdi");
        (await Tools.RunAsync("qemu-img", "create", "-f", "vdi", img, "3M")).Ok();
        (await QemuIo(img, "write -P 0x19 0 3M")).Ok();
        byte[] b = await File.ReadAllBytesAsync(img);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(VdiHeader.DiskSizeOffset), (3 << 20) - 300);
        await File.WriteAllBytesAsync(img, b);
        await ImageInteropChecks.AssertInfoLikeQemuAsync(img, null);
        await ImageInteropChecks.AssertReadsLikeQemuAsync(dir, img, "vdi");
    }

    [Fact]
    public async Task Images_with_a_parent_are_refused_as_qemu_refuses_them()
    {
        using var dir = new TempDir();
        string img = dir.File("child.vdi");
        (await Tools.RunAsync("qemu-img", "create", "-f", "vdi", img, "4M")).Ok();
        foreach (int at in (int[])[VdiHeader.UuidLinkOffset, VdiHeader.UuidParentOffset])
        {
            byte[] b = await File.ReadAllBytesAsync(img);
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(at), 0x12345678);
            string p = dir.File($"child{at}.vdi");
            await File.WriteAllBytesAsync(p, b);
            var q = await Tools.RunAsync("qemu-img", "info", p);
            var s = await Tools.RunAsync("sharpblock", "img", "info", p);
            Assert.Equal(1, q.ExitCode);
            Assert.Equal(q.Stderr.Trim().Replace("qemu-img: ", "", StringComparison.Ordinal), s.OneLineError());
        }
    }
}
