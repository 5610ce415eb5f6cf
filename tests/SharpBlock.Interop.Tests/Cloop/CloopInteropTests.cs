using SharpBlock.Drivers;
using SharpBlock.Graph;
using SharpBlock.Interop.Tests.Vdi;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Cloop;

/// <summary>cloop images made by create_compressed_fs (cloop-utils), read through us and judged against QEMU 7.2's reading.</summary>
public class CloopInteropTests
{
    /// <summary>A mixed raw disk with a tail that is not a whole block, compressed by the reference tool.</summary>
    internal static async Task<(string Img, byte[] Disk)> MakeAsync(TempDir dir, int blockSize)
    {
        string raw = dir.File("src.raw");
        byte[] disk = await ImageInteropChecks.MixedRawAsync(raw, 3, seed: 11);
        await using (var f = new FileStream(raw, FileMode.Append))
            f.Write(disk.AsSpan(0, 70000));
        string img = dir.File("disk.cloop");
        (await Tools.RunAsync("create_compressed_fs", "-q", "-B", blockSize.ToString(System.Globalization.CultureInfo.InvariantCulture), raw, img)).Ok();
        return (img, await File.ReadAllBytesAsync(raw));
    }

    [Theory]
    [InlineData(65536)]
    [InlineData(16384)]
    [InlineData(1048576)]
    public async Task Reference_images_read_like_the_source_and_like_qemu(int blockSize)
    {
        using var dir = new TempDir();
        var (img, disk) = await MakeAsync(dir, blockSize);
        string expect = dir.File("qemu.raw");
        (await Tools.RunAsync("qemu-img", "convert", "-f", "cloop", "-O", "raw", img, expect)).Ok();
        var g = new BlockGraph();
        await using (g)
        {
            var node = await g.AddAsync(ImageFormats.ImageOptions(img, "cloop", readOnly: true, "n0"));
            byte[] want = await File.ReadAllBytesAsync(expect);
            byte[] read = new byte[node.Length];
            await node.ReadAsync(0, read);
            Assert.Equal(want, read);
        }

        // map: the same json; the human form fails as qemu-img's does (no offsets to show for compressed data).
        foreach (string[] args in (string[][])[["map", "--output=json", img], ["map", img]])
        {
            var theirs = await Tools.RunAsync("qemu-img", args);
            var mine = await Tools.RunAsync("sharpblock", ["img", .. args]);
            Assert.Equal(theirs.ExitCode, mine.ExitCode);
            Assert.Equal(theirs.Stdout, mine.Stdout);
            Assert.Equal(theirs.Stderr.Replace("qemu-img:", "", StringComparison.Ordinal), mine.Stderr.Replace("sharpblock:", "", StringComparison.Ordinal));
        }

        // Probed without -f, as QEMU probes it.
        await ImageInteropChecks.AssertInfoLikeQemuAsync(img, null);
        await ImageInteropChecks.AssertInfoLikeQemuAsync(img, "cloop");

        // The source, then zeros up to the last whole block (QEMU's virtual size).
        string ours = dir.File("ours.raw");
        (await Tools.RunAsync("sharpblock", "img", "convert", "-O", "raw", img, ours)).Ok();
        byte[] got = await File.ReadAllBytesAsync(ours);
        Assert.Equal((disk.Length + blockSize - 1) / blockSize * blockSize, got.Length);
        Assert.True(got.AsSpan(0, disk.Length).SequenceEqual(disk), "content differs from the source");
        Assert.True(got.AsSpan(disk.Length).IndexOfAnyExcept((byte)0) < 0, "padding is not zero");
        (await Tools.RunAsync("qemu-img", "compare", "-f", "cloop", "-F", "raw", img, ours)).Ok();

        // cloop -> qcow2 -> raw through us.
        string q = dir.File("mid.qcow2"), back = dir.File("back.raw");
        (await Tools.RunAsync("sharpblock", "img", "convert", "-f", "cloop", "-O", "qcow2", img, q)).Ok();
        Assert.Equal(0, (await Tools.RunAsync("qemu-img", "check", q)).ExitCode);
        (await Tools.RunAsync("sharpblock", "img", "convert", "-f", "qcow2", "-O", "raw", q, back)).Ok();
        Assert.Equal(got, await File.ReadAllBytesAsync(back));
    }

    [Fact]
    public async Task Writes_resize_create_and_check_are_refused_in_qemus_words()
    {
        using var dir = new TempDir();
        var (img, _) = await MakeAsync(dir, 65536);
        foreach (string[] args in (string[][])[["resize", img, "10M"], ["check", img], ["create", "-f", "cloop", dir.File("new.cloop"), "1M"]])
        {
            var theirs = await Tools.RunAsync("qemu-img", args);
            var ours = await Tools.RunAsync("sharpblock", ["img", .. args]);
            Assert.Equal(theirs.ExitCode, ours.ExitCode);
            string want = theirs.Stderr.Trim()[(theirs.Stderr.LastIndexOf(": ", StringComparison.Ordinal) + 2)..];
            Assert.Contains(want, ours.Stderr, StringComparison.Ordinal);
        }

        var g = new BlockGraph();
        await using (g)
        {
            var e = await Assert.ThrowsAnyAsync<SharpBlock.Errors.BlockException>(async () => await g.AddAsync(ImageFormats.ImageOptions(img, "cloop", readOnly: false, "n0")));
            Assert.Contains("Image is read-only", e.Message, StringComparison.Ordinal);
        }
    }
}
