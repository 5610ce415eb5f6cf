using System.Buffers.Binary;
using System.Text;
using SharpBlock.Drivers.Format.Parallels;
using SharpBlock.Interop.Tests.Vdi;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Parallels;

/// <summary>Parallels images judged by QEMU 7.2: qemu's images read through us, ours checked and compared by qemu-img.</summary>
public class ParallelsInteropTests
{
    private static Task<Tools.Result> QemuIo(string img, params string[] cmds) => ImageInteropChecks.QemuIoAsync("parallels", img, cmds);

    /// <summary>qemu-img check and ours print the same report, the same json members and exit with the same code.</summary>
    internal static async Task AssertCheckLikeQemuAsync(string img, params string[] options)
    {
        var theirs = await Tools.RunAsync("qemu-img", ["check", .. options, "--output=json", img]);
        var ours = await Tools.RunAsync("sharpblock", ["img", "check", .. options, "--output=json", img]);
        Assert.Equal(theirs.ExitCode, ours.ExitCode);
        Assert.Equal(ImageInteropChecks.Members(theirs.Stdout), ImageInteropChecks.Members(ours.Stdout));
    }

    internal static async Task AssertHumanCheckLikeQemuAsync(string img, params string[] options)
    {
        var theirs = await Tools.RunAsync("qemu-img", ["check", .. options, img]);
        var ours = await Tools.RunAsync("sharpblock", ["img", "check", .. options, img]);
        Assert.Equal(theirs.ExitCode, ours.ExitCode);
        Assert.Equal(theirs.Stdout, ours.Stdout);
        Assert.Equal(theirs.Stderr.Replace("qemu-img: ", "", StringComparison.Ordinal), ours.Stderr.Replace("sharpblock: ", "", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("cluster_size=1M")]
    [InlineData("cluster_size=4k")]
    [InlineData("cluster_size=64k")]
    [InlineData("cluster_size=1000")]
    public async Task Images_qemu_creates_and_fills_read_byte_for_byte(string options)
    {
        using var dir = new TempDir();
        string img = dir.File("qemu.parallels");
        (await Tools.RunAsync("qemu-img", "create", "-f", "parallels", "-o", options, img, "9437696")).Ok();
        // Data, zeros written as zeros (QEMU allocates for them), a cluster's tail, the last sector.
        (await QemuIo(img, "write -P 0x5a 0 100k", "write -z 1M 512k", "write -P 0x21 3000k 1500k", "write -P 0x7e 9437184 512")).Ok();
        await ImageInteropChecks.AssertReadsLikeQemuAsync(dir, img, "parallels");
        await ImageInteropChecks.AssertInfoLikeQemuAsync(img, null);
        await AssertCheckLikeQemuAsync(img);
        await AssertHumanCheckLikeQemuAsync(img);
    }

    [Fact]
    public async Task The_old_magic_with_a_sector_based_bat_reads_as_qemu_reads_it()
    {
        using var dir = new TempDir();
        string img = dir.File("old.parallels");
        (await Tools.RunAsync("qemu-img", "create", "-f", "parallels", "-o", "cluster_size=4k", img, "4M")).Ok();
        (await QemuIo(img, "write -P 0x11 0 10k", "write -P 0x22 2M 5k", "write -P 0x33 4190208 1024")).Ok();
        byte[] b = await File.ReadAllBytesAsync(img);
        var h = ParallelsHeader.Read(b);
        // Same clusters, the BAT now counting sectors; the high half of nb_sectors is ignored with this magic.
        Encoding.ASCII.GetBytes(ParallelsLayout.MagicSectors).CopyTo(b, 0);
        for (int i = 0; i < h.BatEntries; i++)
        {
            var e = b.AsSpan(ParallelsHeader.Size + (i * 4));
            BinaryPrimitives.WriteUInt32LittleEndian(e, BinaryPrimitives.ReadUInt32LittleEndian(e) * h.Tracks);
        }

        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(ParallelsHeader.NbSectorsOffset + 4), 7);
        await File.WriteAllBytesAsync(img, b);
        await ImageInteropChecks.AssertReadsLikeQemuAsync(dir, img, "parallels");
        await ImageInteropChecks.AssertInfoLikeQemuAsync(img, null);
        await AssertCheckLikeQemuAsync(img);
    }

    [Theory]
    [InlineData("cluster_size=1M")]
    [InlineData("cluster_size=4k")]
    [InlineData("cluster_size=1000")]
    public async Task Images_we_create_and_fill_pass_qemu_img_check_and_compare(string options)
    {
        using var dir = new TempDir();
        string raw = dir.File("mixed.raw");
        await ImageInteropChecks.MixedRawAsync(raw, 8, seed: 3);
        string img = dir.File("ours.parallels");
        (await Tools.RunAsync("sharpblock", "img", "convert", "-f", "raw", "-O", "parallels", "-o", options, raw, img)).Ok();
        var check = await Tools.RunAsync("qemu-img", "check", img);
        Assert.True(check.ExitCode is 0 or 3, check.Stdout + check.Stderr);
        Assert.DoesNotContain("ERROR cluster", check.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("not closed correctly", check.Stderr, StringComparison.Ordinal);
        (await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "parallels", raw, img)).Ok();
        await ImageInteropChecks.AssertInfoLikeQemuAsync(img, null);
        await ImageInteropChecks.AssertReadsLikeQemuAsync(dir, img, "parallels");
        await AssertCheckLikeQemuAsync(img);

        // qemu-io's writes on our image, then ours (through the library) on top, still agree with a model disk.
        await ImageInteropChecks.AssertMixedWritesAgreeAsync("parallels", img, raw, 1 << 20);
        await AssertCheckLikeQemuAsync(img);
        Assert.NotEqual(2, (await Tools.RunAsync("qemu-img", "check", img)).ExitCode);
    }

    [Theory]
    [InlineData("", "10M")]
    [InlineData("cluster_size=4096", "10M")]
    [InlineData("cluster_size=1000", "10M")]
    [InlineData("cluster_size=64k", "1000")]
    [InlineData("", "0")]
    public async Task Img_create_writes_qemus_layout_and_line(string options, string size)
    {
        using var dir = new TempDir();
        string ours = dir.File("ours.parallels"), theirs = dir.File("theirs.parallels");
        string[] o = options.Length > 0 ? ["-o", options] : [];
        var a = (await Tools.RunAsync("sharpblock", ["img", "create", "-f", "parallels", .. o, ours, size])).Ok();
        var b = (await Tools.RunAsync("qemu-img", ["create", "-f", "parallels", .. o, theirs, size])).Ok();
        Assert.Equal(b.Stdout.Replace(theirs, "X", StringComparison.Ordinal), a.Stdout.Replace(ours, "X", StringComparison.Ordinal));
        Assert.Equal(await File.ReadAllBytesAsync(theirs), await File.ReadAllBytesAsync(ours));
    }

    [Fact]
    public async Task Probing_round_trips_and_refusals_match_qemu_img()
    {
        using var dir = new TempDir();
        string img = dir.File("p.parallels");
        (await Tools.RunAsync("qemu-img", "create", "-f", "parallels", img, "4M")).Ok();
        var info = (await Tools.RunAsync("sharpblock", "img", "info", "--output=json", img)).Ok();
        Assert.Contains("\"format\": \"parallels\"", info.Stdout, StringComparison.Ordinal);

        await ImageInteropChecks.AssertRoundTripAsync(dir, "parallels");
        await ImageInteropChecks.AssertRoundTripAsync(dir, "parallels", "-o", "cluster_size=4k");

        async Task BothRefuse(params string[] args)
        {
            var q = await Tools.RunAsync("qemu-img", args);
            var s = await Tools.RunAsync("sharpblock", ["img", .. args]);
            Assert.Equal(1, q.ExitCode);
            Assert.Equal(q.Stderr.Trim().Replace("qemu-img: ", "", StringComparison.Ordinal), s.OneLineError(exitCode: 1));
        }

        await BothRefuse("resize", img, "8M");
        await BothRefuse("measure", "-O", "parallels", "--size", "10M");
        string bad = dir.File("bad.parallels");
        foreach (string[] args in (string[][])[["-o", "cluster_size=0", bad, "10M"], ["-o", "cluster_size=512", bad, "3T"], ["-o", "cluster_size=4G", bad, "10M"], ["-b", img, "-F", "parallels", bad]])
        {
            var q = await Tools.RunAsync("qemu-img", ["create", "-f", "parallels", .. args]);
            var s = await Tools.RunAsync("sharpblock", ["img", "create", "-f", "parallels", .. args]);
            Assert.Equal(1, q.ExitCode);
            Assert.Equal(q.Stdout.Replace(bad, "X", StringComparison.Ordinal), s.Stdout.Replace(bad, "X", StringComparison.Ordinal));
            Assert.Equal(q.Stderr.Trim().Replace("qemu-img: " + bad + ": ", "", StringComparison.Ordinal), s.OneLineError());
        }
    }

    [Fact]
    public async Task Check_reports_and_repairs_like_qemu_img()
    {
        using var dir = new TempDir();
        string img = dir.File("c.parallels");
        (await Tools.RunAsync("qemu-img", "create", "-f", "parallels", "-o", "cluster_size=4k", img, "4M")).Ok();
        (await QemuIo(img, "write -P 0x11 0 10k")).Ok();
        byte[] clean = await File.ReadAllBytesAsync(img);

        // Space past the last cluster is a leak; -r leaks truncates it.
        // Leaks (whole clusters, and a tail that ends inside a sector), the inuse mark of an image not closed
        // cleanly (a repairing check must open it for writing, which a plain writable open refuses), and both.
        byte[] unclean = (byte[])clean.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(unclean.AsSpan(ParallelsHeader.InUseOffset), ParallelsLayout.InUseMagic);
        foreach (byte[] image in (byte[][])[[.. clean, .. new byte[12288]], [.. clean, .. new byte[1000]], unclean, [.. unclean, .. new byte[70000]]])
        {
            foreach (string[] mode in (string[][])[[], ["-r", "leaks"], ["-r", "all"]])
            {
                string a = dir.File("a.parallels"), b = dir.File("b.parallels");
                await File.WriteAllBytesAsync(a, image);
                await File.WriteAllBytesAsync(b, image);
                var q = await Tools.RunAsync("qemu-img", ["check", .. mode, a]);
                var s = await Tools.RunAsync("sharpblock", ["img", "check", .. mode, b]);
                Assert.Equal(q.ExitCode, s.ExitCode);
                Assert.Equal(q.Stdout.Replace(a, "X", StringComparison.Ordinal), s.Stdout.Replace(b, "X", StringComparison.Ordinal));
                Assert.Equal(q.Stderr.Replace("qemu-img: ", "", StringComparison.Ordinal), s.Stderr.Replace("sharpblock: ", "", StringComparison.Ordinal));
                Assert.Equal(await File.ReadAllBytesAsync(a), await File.ReadAllBytesAsync(b));
            }
        }

        // Outside a check, writing an unclean image stays refused, in QEMU's words.
        string w = dir.File("w.parallels");
        await File.WriteAllBytesAsync(w, unclean);
        var g = new SharpBlock.Graph.BlockGraph();
        await using (g)
        {
            var ex = await Assert.ThrowsAnyAsync<SharpBlock.Errors.BlockException>(async () =>
                await g.AddAsync(SharpBlock.Drivers.ImageFormats.ImageOptions(w, "parallels", readOnly: false, "n0")));
            Assert.Contains("Image was not closed correctly; cannot be opened read/write", ex.Message, StringComparison.Ordinal);
        }

        // A cluster past the end of the file is a corruption; the inuse mark too.
        byte[] outside = (byte[])clean.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(outside.AsSpan(ParallelsHeader.Size + 8), 5000);
        string o = dir.File("o.parallels");
        await File.WriteAllBytesAsync(o, outside);
        await AssertCheckLikeQemuAsync(o);
        await AssertHumanCheckLikeQemuAsync(o);
        byte[] inuse = (byte[])clean.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(inuse.AsSpan(ParallelsHeader.InUseOffset), ParallelsLayout.InUseMagic);
        string u = dir.File("u.parallels");
        await File.WriteAllBytesAsync(u, inuse);
        await AssertCheckLikeQemuAsync(u);
        await AssertHumanCheckLikeQemuAsync(u);
    }
}
