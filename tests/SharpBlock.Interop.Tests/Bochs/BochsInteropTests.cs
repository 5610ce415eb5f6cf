using System.Buffers.Binary;
using SharpBlock.Drivers;
using SharpBlock.Drivers.Format.Bochs;
using SharpBlock.Graph;
using SharpBlock.Interop.Tests.Vdi;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Bochs;

/// <summary>Bochs growing redologs made by bximage from a raw disk: we read them as the source and as QEMU 7.2 reads them.</summary>
public class BochsInteropTests
{
    internal static async Task<(string Raw, string Img)> BximageAsync(TempDir dir, int mib)
    {
        string raw = dir.File("source.raw"), img = dir.File("bochs.img");
        await ImageInteropChecks.MixedRawAsync(raw, mib, seed: 5);
        (await Tools.RunAsync("bximage", "-func=convert", "-imgmode=growing", raw, img, "-q")).Ok();
        return (raw, img);
    }

    private static async Task AssertReadsAsSourceAndQemuAsync(TempDir dir, string raw, string img)
    {
        string ours = dir.File("ours-" + Guid.NewGuid().ToString("N") + ".raw");
        // Probed, not named: -f is left out.
        (await Tools.RunAsync("sharpblock", "img", "convert", "-O", "raw", img, ours)).Ok();
        Assert.Equal(await File.ReadAllBytesAsync(raw), await File.ReadAllBytesAsync(ours));
        string theirs = dir.File("theirs-" + Guid.NewGuid().ToString("N") + ".raw");
        (await Tools.RunAsync("qemu-img", "convert", "-f", "bochs", "-O", "raw", img, theirs)).Ok();
        Assert.Equal(await File.ReadAllBytesAsync(theirs), await File.ReadAllBytesAsync(ours));
        // The driver has no block status: one run of data; the human map then fails, as in qemu-img, for want of an offset.
        foreach (string[] args in (string[][])[["map", "-f", "bochs", "--output=json", img], ["map", "-f", "bochs", img]])
        {
            var q = await Tools.RunAsync("qemu-img", args);
            var s = await Tools.RunAsync("sharpblock", ["img", .. args]);
            Assert.Equal(q.ExitCode, s.ExitCode);
            Assert.Equal(q.Stdout, s.Stdout);
            Assert.Equal(q.Stderr.Replace("qemu-img: ", "", StringComparison.Ordinal), s.Stderr.Replace("sharpblock: ", "", StringComparison.Ordinal));
        }

        await ImageInteropChecks.AssertInfoLikeQemuAsync(img, null);
        (await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "bochs", raw, img)).Ok();
    }

    [Fact]
    public async Task Bximage_growing_images_read_like_the_source_and_like_qemu()
    {
        using var dir = new TempDir();
        var (raw, img) = await BximageAsync(dir, 9);
        await AssertReadsAsSourceAndQemuAsync(dir, raw, img);
        var info = (await Tools.RunAsync("sharpblock", "img", "info", "--output=json", img)).Ok();
        Assert.Contains("\"format\": \"bochs\"", info.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_v1_header_reads_like_the_v2_one()
    {
        using var dir = new TempDir();
        var (raw, img) = await BximageAsync(dir, 3);
        byte[] b = await File.ReadAllBytesAsync(img);
        ulong disk = BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(BochsHeader.DiskV2Offset));
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(BochsHeader.VersionOffset), BochsLayout.Version1);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(BochsHeader.DiskV1Offset), disk);
        await File.WriteAllBytesAsync(img, b);
        await AssertReadsAsSourceAndQemuAsync(dir, raw, img);
    }

    [Fact]
    public async Task Writes_creation_check_and_resize_are_refused_as_qemu_refuses_them()
    {
        using var dir = new TempDir();
        var (_, img) = await BximageAsync(dir, 2);
        async Task BothRefuse(int code, params string[] args)
        {
            var q = await Tools.RunAsync("qemu-img", args);
            var s = await Tools.RunAsync("sharpblock", ["img", .. args]);
            Assert.Equal(code, q.ExitCode);
            Assert.Equal(code, s.ExitCode);
        }

        await BothRefuse(63, "check", img);
        await BothRefuse(1, "resize", img, "8M");
        string other = dir.File("new.img");
        await BothRefuse(1, "create", "-f", "bochs", other, "1M");
        // The driver is read-only: a writable open is refused with QEMU's words.
        var g = new BlockGraph();
        await using (g)
        {
            var ex = await Assert.ThrowsAsync<Errors.BlockException>(async () => await g.AddAsync(ImageFormats.ImageOptions(img, "bochs", readOnly: false, "n0")));
            Assert.Contains("Image is read-only", ex.Message, StringComparison.Ordinal);
        }
    }
}
