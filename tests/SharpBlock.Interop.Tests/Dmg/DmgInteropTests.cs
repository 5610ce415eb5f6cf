using SharpBlock.Drivers;
using SharpBlock.Graph;
using SharpBlock.Interop.Tests.Vdi;
using SharpBlock.Testing;
using SharpBlock.Tests.Drivers.Dmg;

namespace SharpBlock.Interop.Tests.Dmg;

/// <summary>dmg images from the test generator read through us, judged by QEMU 7.2 (no bzip2 in Debian's build) and by dmg2img.</summary>
public class DmgInteropTests
{
    private const uint Z = DmgImageBuilder.Zlib, R = DmgImageBuilder.Raw, O = DmgImageBuilder.Zero, I = DmgImageBuilder.Ignore, B = DmgImageBuilder.Bzip2;

    /// <summary>The mixed raw disk (random, text, zero MiBs) and one more odd run of sectors.</summary>
    private static async Task<byte[]> DiskAsync(TempDir dir)
    {
        byte[] mixed = await ImageInteropChecks.MixedRawAsync(dir.File("mixed.raw"), 3, seed: 21);
        return [.. mixed, .. mixed.AsSpan(0, 77 * 512)];
    }

    private static byte[] Expected(byte[] disk, (uint, int)[] plan) => DmgImageBuilder.Expected(disk, plan);

    private static async Task<byte[]> OursAsync(string img)
    {
        var g = new BlockGraph();
        await using (g)
        {
            var node = await g.AddAsync(ImageFormats.ImageOptions(img, "dmg", readOnly: true, "n0"));
            byte[] got = new byte[node.Length];
            await node.ReadAsync(0, got);
            return got;
        }
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public async Task Zlib_raw_and_zero_chunks_read_like_qemu(bool resourceFork, bool relativeData)
    {
        using var dir = new TempDir();
        byte[] disk = await DiskAsync(dir);
        (uint, int)[] plan = [(Z, 2048), (R, 100), (O, 1948), (Z, 1), (I, 1000), (R, 1048), (Z, 4096), (O, 1)];
        string img = dir.File("disk.dmg");
        await File.WriteAllBytesAsync(img, DmgImageBuilder.Build(disk, plan, resourceFork, relativeData));
        string theirs = dir.File("qemu.raw");
        (await Tools.RunAsync("qemu-img", "convert", "-f", "dmg", "-O", "raw", img, theirs)).Ok();
        byte[] want = await File.ReadAllBytesAsync(theirs);
        Assert.Equal(Expected(disk, plan), want);
        Assert.Equal(want, await OursAsync(img));

        // Probed by its name, as QEMU probes it; info and map agree.
        await ImageInteropChecks.AssertInfoLikeQemuAsync(img, null);
        foreach (string[] args in (string[][])[["map", "--output=json", img], ["map", img]])
        {
            var q = await Tools.RunAsync("qemu-img", args);
            var us = await Tools.RunAsync("sharpblock", ["img", .. args]);
            Assert.Equal(q.ExitCode, us.ExitCode);
            Assert.Equal(q.Stdout, us.Stdout);
        }

        string ours = dir.File("ours.raw");
        (await Tools.RunAsync("sharpblock", "img", "convert", "-O", "raw", img, ours)).Ok();
        (await Tools.RunAsync("qemu-img", "compare", "-f", "dmg", "-F", "raw", img, ours)).Ok();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Bzip2_images_read_like_dmg2img(bool resourceFork)
    {
        using var dir = new TempDir();
        byte[] disk = await DiskAsync(dir);
        (uint, int)[] plan = [(B, 2048), (Z, 600), (R, 7), (B, 1441), (O, 2048), (B, 2048), (I, 5)];
        string img = dir.File("disk.dmg");
        await File.WriteAllBytesAsync(img, DmgImageBuilder.Build(disk, plan, resourceFork));
        byte[] got = await OursAsync(img);
        Assert.Equal(Expected(disk, plan), got);
        if (!resourceFork)
        {
            // dmg2img reads the plist form only.
            string theirs = dir.File("dmg2img.raw");
            (await Tools.RunAsync("dmg2img", "-s", img, theirs)).Ok();
            Assert.Equal(got, await File.ReadAllBytesAsync(theirs));
        }

        // Round trip: dmg -> qcow2 -> raw through us.
        string q = dir.File("mid.qcow2"), back = dir.File("back.raw");
        (await Tools.RunAsync("sharpblock", "img", "convert", "-f", "dmg", "-O", "qcow2", img, q)).Ok();
        Assert.Equal(0, (await Tools.RunAsync("qemu-img", "check", q)).ExitCode);
        (await Tools.RunAsync("sharpblock", "img", "convert", "-O", "raw", q, back)).Ok();
        Assert.Equal(got, await File.ReadAllBytesAsync(back));
    }

    [Fact]
    public async Task Writes_resize_create_and_check_are_refused_in_qemus_words()
    {
        using var dir = new TempDir();
        string img = dir.File("disk.dmg");
        await File.WriteAllBytesAsync(img, DmgImageBuilder.Build(await DiskAsync(dir), [(Z, 4096), (R, 4096)], false));
        foreach (string[] args in (string[][])[["resize", img, "10M"], ["check", img], ["create", "-f", "dmg", dir.File("new.dmg"), "1M"]])
        {
            var theirs = await Tools.RunAsync("qemu-img", args);
            var ours = await Tools.RunAsync("sharpblock", ["img", .. args]);
            Assert.Equal(theirs.ExitCode, ours.ExitCode);
            string want = theirs.Stderr.Trim()[(theirs.Stderr.LastIndexOf(": ", StringComparison.Ordinal) + 2)..];
            Assert.Contains(want, ours.Stderr, StringComparison.Ordinal);
        }
    }
}
