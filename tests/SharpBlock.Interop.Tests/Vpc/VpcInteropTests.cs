using System.Buffers.Binary;
using System.Text.Json;
using SharpBlock.Drivers.Format.Vpc;
using SharpBlock.Interop.Tests.Vdi;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Vpc;

/// <summary>VHD images judged by QEMU 7.2: qemu's images read through us, ours compared by qemu-img.</summary>
public class VpcInteropTests
{
    private static Task<Tools.Result> QemuIo(string img, params string[] cmds) => ImageInteropChecks.QemuIoAsync("vpc", img, cmds);

    private static async Task<long> VirtualSizeAsync(string img)
    {
        var r = (await Tools.RunAsync("qemu-img", "info", "-f", "vpc", "--output=json", img)).Ok();
        using var doc = JsonDocument.Parse(r.Stdout);
        return doc.RootElement.GetProperty("virtual-size").GetInt64();
    }

    /// <summary>Sets a field in every footer of the image (the copy at 0 of a dynamic one too) and fixes the checksums.</summary>
    private static async Task PatchFootersAsync(string img, int field, byte[] value)
    {
        byte[] b = await File.ReadAllBytesAsync(img);
        var at = new List<int> { b.Length - 512 };
        if (b.AsSpan(0, 8).SequenceEqual("conectix"u8))
            at.Add(0);
        foreach (int f in at)
        {
            value.CopyTo(b, f + field);
            BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(f + VpcFooter.ChecksumOffset), VpcLayout.Checksum(b.AsSpan(f, 512), VpcFooter.ChecksumOffset));
        }

        await File.WriteAllBytesAsync(img, b);
    }

    [Theory]
    [InlineData("subformat=dynamic")]
    [InlineData("subformat=fixed")]
    [InlineData("force_size=on")]
    [InlineData("subformat=fixed,force_size=on")]
    public async Task Images_qemu_creates_and_fills_read_byte_for_byte(string options)
    {
        using var dir = new TempDir();
        string img = dir.File("qemu.vpc");
        (await Tools.RunAsync("qemu-img", "create", "-f", "vpc", "-o", options, img, "9437696")).Ok();
        long size = await VirtualSizeAsync(img);
        (await QemuIo(img, "write -P 0x5a 0 100k", "write -z 2M 512k", "write -P 0x21 3000k 1500k", $"write -P 0x7e {size - 512} 512")).Ok();
        await ImageInteropChecks.AssertReadsLikeQemuAsync(dir, img, "vpc");
        await ImageInteropChecks.AssertInfoLikeQemuAsync(img, "vpc");
        // Probing as qemu-img does: by the footer copy at byte 0, which a fixed image has not.
        await ImageInteropChecks.AssertInfoLikeQemuAsync(img, null);
    }

    [Theory]
    [InlineData("subformat=dynamic")]
    [InlineData("subformat=fixed")]
    [InlineData("force_size=on")]
    public async Task Images_we_create_and_fill_compare_equal_in_qemu_img(string options)
    {
        using var dir = new TempDir();
        string raw = dir.File("mixed.raw");
        await ImageInteropChecks.MixedRawAsync(raw, 9, seed: 5);
        string img = dir.File("ours.vpc");
        (await Tools.RunAsync("sharpblock", "img", "convert", "-f", "raw", "-O", "vpc", "-o", options, raw, img)).Ok();
        // The image may be a little larger (a whole geometry); compare -s would call that a difference.
        (await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "vpc", raw, img)).Ok();
        await ImageInteropChecks.AssertInfoLikeQemuAsync(img, "vpc");
        await ImageInteropChecks.AssertReadsLikeQemuAsync(dir, img, "vpc");
        var q = await Tools.RunAsync("qemu-img", "check", "-f", "vpc", img);
        var s = await Tools.RunAsync("sharpblock", "img", "check", "-f", "vpc", img);
        Assert.Equal(63, q.ExitCode);
        Assert.Equal(q.Stderr.Trim().Replace("qemu-img: ", "", StringComparison.Ordinal), s.OneLineError(exitCode: 63));

        // qemu-io's writes on our image, then ours on top (a new block and an old one), agree with a model disk.
        await ImageInteropChecks.AssertMixedWritesAgreeAsync("vpc", img, raw, 3 << 20);
    }

    [Theory]
    [InlineData("subformat=dynamic", "10M")]
    [InlineData("subformat=fixed", "10M")]
    [InlineData("force_size=on", "10M")]
    [InlineData("subformat=dynamic", "1000")]
    [InlineData("force_size=on", "1000")]
    [InlineData("subformat=dynamic", "0")]
    [InlineData("subformat=dynamic", "200G")]
    public async Task Img_create_writes_qemus_layout_and_line(string options, string size)
    {
        using var dir = new TempDir();
        string ours = dir.File("ours.vpc"), theirs = dir.File("theirs.vpc");
        var a = (await Tools.RunAsync("sharpblock", "img", "create", "-f", "vpc", "-o", options, ours, size)).Ok();
        var b = (await Tools.RunAsync("qemu-img", "create", "-f", "vpc", "-o", options, theirs, size)).Ok();
        Assert.Equal(b.Stdout.Replace(theirs, "X", StringComparison.Ordinal), a.Stdout.Replace(ours, "X", StringComparison.Ordinal));
        Assert.Equal(new FileInfo(theirs).Length, new FileInfo(ours).Length);
        // Only the timestamp, the checksum and the random UUID of each footer may differ.
        Assert.True(Masked(ours).AsSpan().SequenceEqual(Masked(theirs)));
    }

    /// <summary>
    /// The first 64 KiB and the last sector (enough for every structure, without reading a big fixed image),
    /// with each footer's timestamp, checksum and UUID cleared.
    /// </summary>
    private static byte[] Masked(string path)
    {
        using var fs = File.OpenRead(path);
        long length = fs.Length;
        int head = (int)Math.Min(length, 65536);
        byte[] b = new byte[head + 512];
        fs.ReadExactly(b.AsSpan(0, head));
        fs.Position = length - 512;
        fs.ReadExactly(b.AsSpan(head, 512));
        var footers = new List<long> { 0, head };
        if (length <= 65536)
            footers.Add(length - 512);
        foreach (long f in footers)
        {
            if (!b.AsSpan((int)f, 8).SequenceEqual("conectix"u8))
                continue;
            b.AsSpan((int)f + VpcFooter.TimestampOffset, 4).Clear();
            b.AsSpan((int)f + VpcFooter.ChecksumOffset, 4 + 16).Clear();
        }

        return b;
    }

    [Theory]
    [InlineData("vpc ")]
    [InlineData("win ")]
    [InlineData("d2v ")]
    [InlineData("qem2")]
    [InlineData("CTXS")]
    [InlineData("tap\0")]
    [InlineData("xyz ")]
    public async Task Images_from_other_creators_get_qemus_virtual_size(string creator)
    {
        using var dir = new TempDir();
        foreach (string sub in (string[])["dynamic", "fixed"])
        {
            string img = dir.File($"{sub}.vpc");
            (await Tools.RunAsync("qemu-img", "create", "-f", "vpc", "-o", "subformat=" + sub, img, "10M")).Ok();
            (await QemuIo(img, "write -P 0x61 0 64k", "write -P 0x62 9M 1M")).Ok();
            // Hyper-V, Disk2VHD and the Xen tools record the exact size, which the CHS geometry rounds up.
            await PatchFootersAsync(img, VpcFooter.CreatorAppOffset, System.Text.Encoding.ASCII.GetBytes(creator));
            byte[] size = new byte[8];
            BinaryPrimitives.WriteUInt64BigEndian(size, 10UL << 20);
            await PatchFootersAsync(img, VpcFooter.CurrentSizeOffset, size);
            await ImageInteropChecks.AssertInfoLikeQemuAsync(img, "vpc");
            await ImageInteropChecks.AssertReadsLikeQemuAsync(dir, img, "vpc");
        }
    }

    [Fact]
    public async Task A_differencing_image_reads_as_qemu_reads_it()
    {
        // QEMU 7.2 has no VHD backing files: a differencing disk opens as a dynamic one whose holes read as zeros.
        using var dir = new TempDir();
        string img = dir.File("diff.vpc");
        (await Tools.RunAsync("qemu-img", "create", "-f", "vpc", img, "6M")).Ok();
        (await QemuIo(img, "write -P 0x71 2M 1M")).Ok();
        byte[] type = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(type, VpcLayout.TypeDifferencing);
        await PatchFootersAsync(img, VpcFooter.DiskTypeOffset, type);
        await ImageInteropChecks.AssertInfoLikeQemuAsync(img, null);
        await ImageInteropChecks.AssertReadsLikeQemuAsync(dir, img, "vpc");
    }

    [Fact]
    public async Task Round_trips_and_refusals_match_qemu_img()
    {
        using var dir = new TempDir();
        await ImageInteropChecks.AssertRoundTripAsync(dir, "vpc");
        await ImageInteropChecks.AssertRoundTripAsync(dir, "vpc", "-o", "subformat=fixed");
        await ImageInteropChecks.AssertRoundTripAsync(dir, "vpc", "-o", "force_size=on");

        string img = dir.File("p.vpc");
        (await Tools.RunAsync("qemu-img", "create", "-f", "vpc", img, "4M")).Ok();

        async Task BothRefuse(int code, params string[] args)
        {
            var q = await Tools.RunAsync("qemu-img", args);
            var s = await Tools.RunAsync("sharpblock", ["img", .. args]);
            Assert.Equal(code, q.ExitCode);
            Assert.Equal(q.Stderr.Trim().Replace("qemu-img: ", "", StringComparison.Ordinal), s.OneLineError(exitCode: code));
        }

        await BothRefuse(1, "resize", img, "8M");
        await BothRefuse(1, "measure", "-O", "vpc", "--size", "10M");
        await BothRefuse(63, "check", img);

        string bad = dir.File("bad.vpc");
        foreach (string[] create in (string[][])[["2041G"], ["-o", "subformat=fixed", "2190433321472"], ["-o", "subformat=foo", "1M"], ["-b", img, "-F", "vpc", "1M"]])
        {
            var q = await Tools.RunAsync("qemu-img", ["create", "-f", "vpc", bad, .. create]);
            var s = await Tools.RunAsync("sharpblock", ["img", "create", "-f", "vpc", bad, .. create]);
            Assert.Equal(q.Stdout.Replace(bad, "X", StringComparison.Ordinal), s.Stdout.Replace(bad, "X", StringComparison.Ordinal));
            Assert.Equal(q.Stderr.Trim().Replace("qemu-img: " + bad + ": ", "", StringComparison.Ordinal), s.OneLineError());
        }

        // A footer whose checksum does not add up is refused by both.
        byte[] b = await File.ReadAllBytesAsync(img);
        b[VpcFooter.UuidOffset] ^= 0xff;
        await File.WriteAllBytesAsync(bad, b);
        await BothRefuse(1, "info", bad);
    }
}
