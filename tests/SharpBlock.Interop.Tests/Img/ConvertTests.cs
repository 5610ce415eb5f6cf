using System.Text.Json;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Img;

/// <summary>
/// `sharpblock img convert` with parallel workers: the content qemu-img compare accepts whatever -m, -W and
/// -c say, writes in guest order unless -W, zeros left out of fresh targets but written into old ones.
/// </summary>
public class ConvertTests
{
    private static Task<Tools.Result> Ours(params string[] args) => Tools.RunAsync("sharpblock", ["img", .. args]);

    private static Task<Tools.Result> Qemu(params string[] args) => Tools.RunAsync("qemu-img", args);

    /// <summary>
    /// 12 MiB in 256 KiB..1 MiB pieces: random, text-like, written zeros and holes in turn, ending on an odd
    /// size so the last cluster is short.
    /// </summary>
    private static async Task<string> MixedRawAsync(TempDir dir)
    {
        string path = dir.File("mixed.raw");
        var rng = new Random(7);
        int size = (12 << 20) - 3072;
        await using var fs = new FileStream(path, FileMode.Create);
        fs.SetLength(size);
        int off = 0;
        for (int kind = 0; off < size; kind = (kind + 1) % 4)
        {
            int n = Math.Min(size - off, rng.Next(1, 5) << 18);
            var piece = new byte[n];
            if (kind == 0)
            {
                rng.NextBytes(piece);
            }
            else if (kind == 1)
            {
                for (int i = 0; i < n; i++)
                    piece[i] = (byte)("block cluster refcount "[(i + off) % 23]);
            }

            if (kind != 3)
            {
                fs.Position = off;
                await fs.WriteAsync(piece);
            }

            off += n;
        }

        return path;
    }

    private static async Task<List<(long Start, long Length, bool Data, long? Offset, int Depth)>> MapAsync(string image, string fmt)
    {
        var map = JsonDocument.Parse((await Qemu("map", "--output=json", "-f", fmt, image)).Ok().Stdout).RootElement;
        var list = new List<(long, long, bool, long?, int)>();
        foreach (var e in map.EnumerateArray())
        {
            list.Add((e.GetProperty("start").GetInt64(), e.GetProperty("length").GetInt64(), e.GetProperty("data").GetBoolean(),
                e.TryGetProperty("offset", out var o) ? o.GetInt64() : null, e.GetProperty("depth").GetInt32()));
        }

        return list;
    }

    [Theory]
    [InlineData("-m", "1")]
    [InlineData("-m", "8")]
    [InlineData("-m", "16", "-W")]
    [InlineData("-c")]
    [InlineData("-c", "-m", "3", "-W")]
    [InlineData("-S", "0", "-m", "4")]
    public async Task Parallel_convert_to_qcow2_keeps_content_and_orders_writes_unless_W(params string[] opts)
    {
        using var dir = new TempDir();
        string src = await MixedRawAsync(dir);
        string dst = dir.File("out.qcow2");
        (await Ours(["convert", "-f", "raw", "-O", "qcow2", .. opts, src, dst])).Ok();
        (await Qemu("check", dst)).Ok();
        (await Qemu("compare", "-f", "raw", "-F", "qcow2", src, dst)).Ok();
        var map = await MapAsync(dst, "qcow2");
        bool sparse = !opts.Contains("-S");
        Assert.Equal(sparse, map.Exists(e => !e.Data));
        if (!opts.Contains("-W") && !opts.Contains("-c"))
        {
            // Writes in guest order allocate host clusters in guest order.
            long last = -1;
            foreach (var e in map)
            {
                if (e.Offset is not { } host)
                    continue;
                Assert.True(host > last, $"host offset 0x{host:x} of guest 0x{e.Start:x} is not after 0x{last:x}");
                last = host;
            }
        }

        string back = dir.File("back.raw");
        (await Ours("convert", "-m", "5", "-W", "-O", "raw", dst, back)).Ok();
        byte[] want = await File.ReadAllBytesAsync(src);
        byte[] got = await File.ReadAllBytesAsync(back);
        Assert.True(want.AsSpan().SequenceEqual(got));
    }

    [Fact]
    public async Task Written_zeros_become_holes_in_a_fresh_raw_target()
    {
        using var dir = new TempDir();
        string src = dir.File("z.raw");
        var data = new byte[4 << 20];
        data.AsSpan(0, 1 << 20).Fill(0x61);
        data.AsSpan(3 << 20).Fill(0x62);
        await File.WriteAllBytesAsync(src, data);
        string dst = dir.File("d.raw");
        (await Ours("convert", "-f", "raw", "-O", "raw", src, dst)).Ok();
        (await Qemu("compare", "-f", "raw", "-F", "raw", src, dst)).Ok();
        var map = await MapAsync(dst, "raw");
        Assert.Contains(map, e => !e.Data && e.Start <= (1 << 20) && e.Start + e.Length >= (3 << 20));
    }

    [Fact]
    public async Task With_n_zeros_overwrite_what_the_target_held_unless_it_is_declared_zero()
    {
        using var dir = new TempDir();
        string src = await MixedRawAsync(dir);
        long size = new FileInfo(src).Length;
        foreach (string fmt in new[] { "raw", "qcow2" })
        {
            string dst = dir.File("old." + fmt);
            (await Qemu("create", "-q", "-f", fmt, dst, size.ToString(System.Globalization.CultureInfo.InvariantCulture))).Ok();
            (await Tools.RunAsync("qemu-io", "-f", fmt, "-c", $"write -P 0xee 0 {size}", dst)).Ok();
            (await Ours("convert", "-n", "-f", "raw", "-O", fmt, src, dst)).Ok();
            (await Qemu("compare", "-f", "raw", "-F", fmt, src, dst)).Ok();
        }

        string fresh = dir.File("fresh.qcow2");
        (await Qemu("create", "-q", "-f", "qcow2", fresh, size.ToString(System.Globalization.CultureInfo.InvariantCulture))).Ok();
        (await Ours("convert", "-n", "--target-is-zero", "-f", "raw", "-O", "qcow2", src, fresh)).Ok();
        (await Qemu("compare", "-f", "raw", "-F", "qcow2", src, fresh)).Ok();
        var bad = await Ours("convert", "--target-is-zero", "-f", "raw", "-O", "qcow2", src, dir.File("x.qcow2"));
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("requires use of -n", bad.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("writeback", "none")]
    [InlineData("none", "writeback")]
    [InlineData("directsync", "unsafe")]
    public async Task Cache_modes_of_source_and_target_give_the_same_image(string target, string source)
    {
        using var dir = new TempDir();
        string src = await MixedRawAsync(dir);
        string dst = dir.File("c.qcow2");
        (await Ours("convert", "-t", target, "-T", source, "-f", "raw", "-O", "qcow2", src, dst)).Ok();
        (await Qemu("check", dst)).Ok();
        (await Qemu("compare", "-f", "raw", "-F", "qcow2", src, dst)).Ok();
        var bad = await Ours("convert", "-t", "sometimes", "-f", "raw", src, dir.File("x.raw"));
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("Invalid cache option: sometimes", bad.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_full_target_disk_fails_the_convert_with_its_own_error()
    {
        using var dir = new TempDir();
        string src = dir.File("r.raw");
        var data = new byte[8 << 20];
        new Random(5).NextBytes(data);
        await File.WriteAllBytesAsync(src, data);
        using var fs = SmallFileSystem.Mount(2 << 20);
        var r = await Ours("convert", "-m", "8", "-f", "raw", "-O", "raw", src, Path.Combine(fs.Path, "d.raw"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("No space left on device", r.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("-c")]
    [InlineData("-W", "-m", "2")]
    public async Task With_B_and_F_only_the_top_is_copied_in_parallel(params string[] opts)
    {
        using var dir = new TempDir();
        string src = await MixedRawAsync(dir);
        string b = dir.File("b.qcow2"), t = dir.File("t.qcow2"), o = dir.File("o.qcow2");
        (await Qemu("convert", "-f", "raw", "-O", "qcow2", src, b)).Ok();
        (await Qemu("create", "-q", "-f", "qcow2", "-b", b, "-F", "qcow2", t)).Ok();
        (await Tools.RunAsync("qemu-io", "-c", "write -P 7 1M 3M", "-c", "write -z 6M 1M", "-c", "write -P 9 9M 64k", t)).Ok();
        (await Ours(["convert", "-O", "qcow2", "-B", b, "-F", "qcow2", .. opts, t, o])).Ok();
        (await Qemu("check", o)).Ok();
        (await Qemu("compare", t, o)).Ok();
        var own = (await MapAsync(o, "qcow2")).FindAll(e => e.Data && e.Depth == 0);
        long ownBytes = 0;
        foreach (var e in own)
            ownBytes += e.Length;
        Assert.True(ownBytes <= (3 << 20) + (64 << 10), $"only the top's data is copied, got {ownBytes} bytes");
    }

    [Theory]
    [InlineData("16")]
    [InlineData("1")]
    public async Task Compressed_clusters_pack_as_tightly_as_qemu_img_packs_them(string refcountBits)
    {
        using var dir = new TempDir();
        string src = dir.File("text.raw");
        var data = new byte[6 << 20];
        var rng = new Random(11);
        string[] words = ["block ", "cluster ", "refcount ", "qcow2 ", "the ", "of ", "a\n", "0x1f3a "];
        for (int i = 0; i < data.Length;)
        {
            foreach (char c in words[rng.Next(words.Length)])
            {
                if (i < data.Length)
                    data[i++] = (byte)c;
            }
        }

        await File.WriteAllBytesAsync(src, data);
        string ours = dir.File("ours.qcow2"), theirs = dir.File("theirs.qcow2");
        (await Ours("convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "refcount_bits=" + refcountBits, src, ours)).Ok();
        (await Qemu("convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "refcount_bits=" + refcountBits, src, theirs)).Ok();
        (await Qemu("check", ours)).Ok();
        (await Qemu("compare", "-f", "raw", "-F", "qcow2", src, ours)).Ok();
        long o = new FileInfo(ours).Length, t = new FileInfo(theirs).Length;
        Assert.True(o <= t + 4096, $"ours {o} bytes, qemu-img's {t}");
    }
}
