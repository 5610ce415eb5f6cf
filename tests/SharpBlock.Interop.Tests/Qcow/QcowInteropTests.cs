using System.Buffers.Binary;
using SharpBlock.Drivers.Format.Qcow;
using SharpBlock.Interop.Tests.Vdi;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Qcow;

/// <summary>qcow (version 1) images judged by QEMU 7.2: qemu's images read through us, ours compared by qemu-img (qemu has no check for qcow).</summary>
public class QcowInteropTests
{
    private static Task<Tools.Result> QemuIo(string img, params string[] cmds) => ImageInteropChecks.QemuIoAsync("qcow", img, cmds);

    [Fact]
    public async Task Images_qemu_creates_and_fills_read_byte_for_byte()
    {
        using var dir = new TempDir();
        string img = dir.File("qemu.qcow");
        (await Tools.RunAsync("qemu-img", "create", "-f", "qcow", img, "9437696")).Ok();
        // Data, zeros written as zeros, a run across L2 tables, and the last sector.
        (await QemuIo(img, "write -P 0x5a 0 100k", "write -z 1M 512k", "write -P 0x21 3000k 1500k", "write -P 0x7e 9436672 512")).Ok();
        await ImageInteropChecks.AssertReadsLikeQemuAsync(dir, img, "qcow");
        await ImageInteropChecks.AssertInfoLikeQemuAsync(img, null);
        await ImageInteropChecks.AssertInfoLikeQemuAsync(img, "qcow");
    }

    [Fact]
    public async Task Compressed_images_qemu_writes_read_byte_for_byte()
    {
        using var dir = new TempDir();
        string raw = dir.File("text.raw");
        byte[] disk = new byte[4 << 20];
        byte[] line = System.Text.Encoding.ASCII.GetBytes("The quick brown fox jumps over the lazy dog. ");
        for (int i = 0; i < (2 << 20); i++)
            disk[i] = line[i % line.Length];
        for (int i = 3 << 20; i < disk.Length; i++)
            disk[i] = (byte)('0' + (i / 977 % 10));
        await File.WriteAllBytesAsync(raw, disk);
        string img = dir.File("qemu-c.qcow");
        // QEMU 7.2 writes every cluster but then exits 1 without a word (its qcow refuses the final empty
        // compressed write convert -c makes); the image itself is complete, as qemu-img compare shows.
        await Tools.RunAsync("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow", raw, img);
        (await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "qcow", raw, img)).Ok();
        Assert.True(new FileInfo(img).Length < disk.Length / 4);
        await AssertCompressedReadsLikeQemuAsync(dir, img);
        (await Tools.RunAsync("sharpblock", "img", "compare", "-f", "raw", "-F", "qcow", raw, img)).Ok();

        // Our writes over compressed clusters (partial ones keep the rest of the cluster); qemu-img reads them back.
        var g = new SharpBlock.Graph.BlockGraph();
        await using (g)
        {
            var node = await g.AddAsync(SharpBlock.Drivers.ImageFormats.ImageOptions(img, "qcow", readOnly: false, "n0"));
            await node.WriteAsync(1000, Enumerable.Repeat((byte)0x44, 10000).ToArray());
        }

        disk.AsSpan(1000, 10000).Fill(0x44);
        await File.WriteAllBytesAsync(raw, disk);
        (await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "qcow", raw, img)).Ok();
    }

    /// <summary>
    /// As <see cref="ImageInteropChecks.AssertReadsLikeQemuAsync"/>, except that the human map of an image with
    /// compressed clusters is refused by qemu-img, and must be refused by us in the same words.
    /// </summary>
    private static async Task AssertCompressedReadsLikeQemuAsync(TempDir dir, string img)
    {
        string theirs = dir.File("theirs.raw"), ours = dir.File("ours.raw");
        (await Tools.RunAsync("qemu-img", "convert", "-f", "qcow", "-O", "raw", img, theirs)).Ok();
        (await Tools.RunAsync("sharpblock", "img", "convert", "-f", "qcow", "-O", "raw", img, ours)).Ok();
        Assert.Equal(await File.ReadAllBytesAsync(theirs), await File.ReadAllBytesAsync(ours));
        Assert.Equal((await Tools.RunAsync("qemu-img", "map", "-f", "qcow", "--output=json", img)).Ok().Stdout,
            (await Tools.RunAsync("sharpblock", "img", "map", "-f", "qcow", "--output=json", img)).Ok().Stdout);
        var q = await Tools.RunAsync("qemu-img", "map", "-f", "qcow", img);
        var s = await Tools.RunAsync("sharpblock", "img", "map", "-f", "qcow", img);
        Assert.Equal(q.ExitCode, s.ExitCode);
        Assert.Equal(q.Stderr.Replace("qemu-img: ", "", StringComparison.Ordinal), s.Stderr.Replace("sharpblock: ", "", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Backed_images_read_through_their_backing_file()
    {
        using var dir = new TempDir();
        string baseImg = dir.File("base.qcow"), top = dir.File("top.qcow");
        (await Tools.RunAsync("qemu-img", "create", "-f", "qcow", baseImg, "4M")).Ok();
        (await QemuIo(baseImg, "write -P 0x11 0 4M")).Ok();
        (await Tools.RunAsync("qemu-img", "create", "-f", "qcow", "-b", "base.qcow", "-F", "qcow", top)).Ok();
        (await QemuIo(top, "write -P 0x22 4k 1k", "write -z 1M 64k", "write -P 0x33 4193792 512")).Ok();
        await ImageInteropChecks.AssertReadsLikeQemuAsync(dir, top, "qcow");
        await ImageInteropChecks.AssertInfoLikeQemuAsync(top, null);

        // An overlay we make over qemu's base: qemu-img reads it as we do.
        string ours = dir.File("ours.qcow");
        var c = (await Tools.RunAsync("sharpblock", "img", "create", "-f", "qcow", "-b", "base.qcow", "-F", "qcow", ours)).Ok();
        Assert.Contains("fmt=qcow size=4194304 backing_file=base.qcow backing_fmt=qcow", c.Stdout, StringComparison.Ordinal);
        (await Tools.RunAsync("sharpblock", "img", "convert", "-f", "qcow", "-O", "qcow", "-B", "base.qcow", "-o", "backing_fmt=qcow", top, ours)).Ok();
        (await Tools.RunAsync("qemu-img", "compare", top, ours)).Ok();
        await ImageInteropChecks.AssertInfoLikeQemuAsync(ours, null);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Images_we_create_and_fill_pass_qemu_img_compare(bool compressed)
    {
        using var dir = new TempDir();
        string raw = dir.File("mixed.raw");
        await ImageInteropChecks.MixedRawAsync(raw, 8, seed: 3);
        string img = dir.File("ours.qcow");
        string[] c = compressed ? ["-c"] : [];
        (await Tools.RunAsync("sharpblock", ["img", "convert", .. c, "-f", "raw", "-O", "qcow", raw, img])).Ok();
        (await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "qcow", raw, img)).Ok();
        await ImageInteropChecks.AssertInfoLikeQemuAsync(img, null);
        if (compressed)
            await AssertCompressedReadsLikeQemuAsync(dir, img);
        else
            await ImageInteropChecks.AssertReadsLikeQemuAsync(dir, img, "qcow");
        if (compressed)
        {
            // Deflated: smaller than qemu-img's uncompressed output of the same disk.
            string plain = dir.File("plain.qcow");
            (await Tools.RunAsync("qemu-img", "convert", "-f", "raw", "-O", "qcow", raw, plain)).Ok();
            Assert.True(new FileInfo(img).Length < new FileInfo(plain).Length);
        }

        if (!compressed)
        {
            // qemu-io cannot write over compressed qcow clusters (QEMU 7.2 fails them with EIO), so only the plain image.
            await ImageInteropChecks.AssertMixedWritesAgreeAsync("qcow", img, raw, 1 << 20);
            (await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "qcow", raw, img)).Ok();
        }
    }

    [Theory]
    [InlineData("10M", false)]
    [InlineData("1000", false)]
    [InlineData("3G", false)]
    [InlineData("10M", true)]
    public async Task Img_create_writes_qemus_layout_and_line(string size, bool backed)
    {
        using var dir = new TempDir();
        string ours = dir.File("ours.qcow"), theirs = dir.File("theirs.qcow"), b = dir.File("b.raw");
        (await Tools.RunAsync("qemu-img", "create", "-f", "raw", b, size)).Ok();
        string[] o = backed ? ["-b", "b.raw", "-F", "raw"] : [];
        var x = (await Tools.RunAsync("sharpblock", ["img", "create", "-f", "qcow", .. o, ours, size])).Ok();
        var y = (await Tools.RunAsync("qemu-img", ["create", "-f", "qcow", .. o, theirs, size])).Ok();
        Assert.Equal(y.Stdout.Replace(theirs, "X", StringComparison.Ordinal), x.Stdout.Replace(ours, "X", StringComparison.Ordinal));
        Assert.Equal(await File.ReadAllBytesAsync(theirs), await File.ReadAllBytesAsync(ours));
    }

    [Fact]
    public async Task Probing_round_trips_and_refusals_match_qemu_img()
    {
        using var dir = new TempDir();
        string img = dir.File("p.qcow");
        (await Tools.RunAsync("qemu-img", "create", "-f", "qcow", img, "4M")).Ok();
        var info = (await Tools.RunAsync("sharpblock", "img", "info", "--output=json", img)).Ok();
        Assert.Contains("\"format\": \"qcow\"", info.Stdout, StringComparison.Ordinal);
        // qcow2 shares the magic: the version decides.
        string q2 = dir.File("p.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-f", "qcow2", q2, "4M")).Ok();
        Assert.Contains("\"format\": \"qcow2\"", (await Tools.RunAsync("sharpblock", "img", "info", "--output=json", q2)).Ok().Stdout, StringComparison.Ordinal);

        await ImageInteropChecks.AssertRoundTripAsync(dir, "qcow");
        await ImageInteropChecks.AssertRoundTripAsync(dir, "qcow", "-c");

        async Task BothRefuse(int code, params string[] args)
        {
            var q = await Tools.RunAsync("qemu-img", args);
            var s = await Tools.RunAsync("sharpblock", ["img", .. args]);
            Assert.Equal(code, q.ExitCode);
            Assert.Equal(q.Stderr.Trim().Replace("qemu-img: ", "", StringComparison.Ordinal), s.OneLineError(exitCode: code));
        }

        await BothRefuse(1, "resize", img, "8M");
        await BothRefuse(1, "measure", "-O", "qcow", "--size", "10M");

        // Headers QEMU refuses, refused in its words.
        byte[] good = await File.ReadAllBytesAsync(img);
        foreach (var (at, value, width) in (ValueTuple<int, ulong, int>[])[(4, 7, 4), (QcowHeader.SizeOffset, 1, 8), (QcowHeader.ClusterBitsOffset, 17, 1), (QcowHeader.L2BitsOffset, 5, 1), (QcowHeader.CryptMethodOffset, 2, 4)])
        {
            byte[] bad = (byte[])good.Clone();
            if (width == 1)
                bad[at] = (byte)value;
            else if (width == 4)
                BinaryPrimitives.WriteUInt32BigEndian(bad.AsSpan(at), (uint)value);
            else
                BinaryPrimitives.WriteUInt64BigEndian(bad.AsSpan(at), value);
            string p = dir.File($"bad{at}.qcow");
            await File.WriteAllBytesAsync(p, bad);
            var q = await Tools.RunAsync("qemu-img", "info", "-f", "qcow", p);
            var s = await Tools.RunAsync("sharpblock", "img", "info", "-f", "qcow", p);
            Assert.Equal(1, q.ExitCode);
            Assert.Equal(q.Stderr.Trim().Split('\n')[0].Replace("qemu-img: ", "", StringComparison.Ordinal), s.OneLineError());
        }
    }
}
