using System.Text.Json;
using SharpBlock.Drivers;
using SharpBlock.Graph;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Vmdk;

/// <summary>qemu's VMDK images read through us byte for byte, and ours judged by qemu-img (check, compare, info).</summary>
public class VmdkInteropTests
{
    public static readonly TheoryData<string> Subformats =
        ["monolithicSparse", "monolithicFlat", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat", "streamOptimized"];

    private static async Task<(BlockGraph, BlockNode)> OpenAsync(string path, bool readOnly, string? format = "vmdk")
    {
        var g = new BlockGraph();
        format ??= await ImageFormats.ProbeNameAsync(path);
        return (g, await g.AddAsync(ImageFormats.ImageOptions(path, format, readOnly, "n0")));
    }

    /// <summary>A raw disk of random, text and zero MiBs, with a partial last sector's worth of data at the end.</summary>
    internal static byte[] MixedDisk(int mib, int seed)
    {
        var rnd = new Random(seed);
        byte[] d = new byte[mib << 20];
        for (int i = 0; i < mib; i++)
        {
            var part = d.AsSpan(i << 20, 1 << 20);
            switch (i % 3)
            {
                case 0:
                    rnd.NextBytes(part[..(700 << 10)]);
                    break;
                case 1:
                    for (int j = 0; j < part.Length; j++)
                        part[j] = (byte)"the quick brown fox jumps over the lazy dog\n"[j % 44];
                    break;
            }
        }

        rnd.NextBytes(d.AsSpan(d.Length - 512));
        return d;
    }

    private static async Task AssertReadsLikeQemuAsync(TempDir dir, string img)
    {
        string expect = dir.File("expect.raw");
        (await Tools.RunAsync("qemu-img", "convert", "-O", "raw", img, expect)).Ok();
        byte[] want = await File.ReadAllBytesAsync(expect);
        var (g, node) = await OpenAsync(img, readOnly: true, format: null);
        await using (g)
        {
            Assert.Equal("vmdk", node.DriverName);
            Assert.Equal(want.Length, node.Length);
            byte[] got = new byte[want.Length];
            await node.ReadAsync(0, got);
            Assert.True(want.AsSpan().SequenceEqual(got), "our read differs from qemu-img convert -O raw");
        }
    }

    [Theory]
    [MemberData(nameof(Subformats))]
    public async Task Images_qemu_creates_and_fills_read_byte_identical(string subformat)
    {
        using var dir = new TempDir();
        string img = dir.File("q.vmdk");
        const int size = 6 << 20;
        (await Tools.RunAsync("qemu-img", "create", "-f", "vmdk", "-o", "subformat=" + subformat, img, size.ToString(System.Globalization.CultureInfo.InvariantCulture))).Ok();
        if (subformat == "streamOptimized")
        {
            // A stream takes whole grains, once each: fill it by converting, as qemu-img makes them.
            string raw = dir.File("src.raw");
            await File.WriteAllBytesAsync(raw, MixedDisk(6, 3));
            (await Tools.RunAsync("qemu-img", "convert", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, img)).Ok();
        }
        else
        {
            (await Tools.RunAsync("qemu-io", "-f", "vmdk", "-c", "write -P 0x5a 0 100k", "-c", "write -P 0x33 1M 64k", "-c", "write -z 1056k 8k",
                "-c", "write -P 0x77 " + (size - 512) + " 512", "-c", "write -P 0x11 3000000 70000", img)).Ok();
        }

        await AssertReadsLikeQemuAsync(dir, img);
    }

    [Theory]
    [InlineData("zeroed_grain=on")]
    [InlineData("adapter_type=lsilogic,hwversion=7,toolsversion=123")]
    [InlineData("compat6=on")]
    public async Task Qemu_options_and_zeroed_grains_read_byte_identical(string options)
    {
        using var dir = new TempDir();
        string img = dir.File("q.vmdk");
        (await Tools.RunAsync("qemu-img", "create", "-f", "vmdk", "-o", options, img, "4M")).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "vmdk", "-c", "write -P 0x5a 0 256k", "-c", "write -z 64k 128k", "-c", "write -z 200k 1k",
            "-c", "write -P 0x42 4193792 512", img)).Ok();
        await AssertReadsLikeQemuAsync(dir, img);
    }

    [Theory]
    [MemberData(nameof(Subformats))]
    public async Task Images_we_convert_pass_qemu_img_check_and_compare(string subformat)
    {
        using var dir = new TempDir();
        string raw = dir.File("mixed.raw");
        await File.WriteAllBytesAsync(raw, MixedDisk(7, 11));
        string img = dir.File("ours.vmdk");
        (await Tools.RunAsync("sharpblock", "img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=" + subformat, raw, img)).Ok();
        var check = await Tools.RunAsync("qemu-img", "check", img);
        Assert.True(check.ExitCode == 0, check.Stdout + check.Stderr);
        Assert.Contains("No errors were found on the image.", check.Stdout, StringComparison.Ordinal);
        (await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "vmdk", raw, img)).Ok();
        (await Tools.RunAsync("sharpblock", "img", "compare", "-f", "raw", "-F", "vmdk", raw, img)).Ok();
        using var info = JsonDocument.Parse((await Tools.RunAsync("qemu-img", "info", "--output=json", img)).Ok().Stdout);
        var data = info.RootElement.GetProperty("format-specific").GetProperty("data");
        Assert.Equal(subformat, data.GetProperty("create-type").GetString());
    }

    [Theory]
    [MemberData(nameof(Subformats))]
    public async Task Images_we_create_and_fill_pass_qemu_img_check_and_compare(string subformat)
    {
        using var dir = new TempDir();
        string img = dir.File("ours.vmdk");
        const int size = 5 << 20;
        (await Tools.RunAsync("sharpblock", "img", "create", "-f", "vmdk", "-o", "subformat=" + subformat, img, "5M")).Ok();
        var model = new byte[size];
        var (g, node) = await OpenAsync(img, readOnly: false);
        await using (g)
        {
            if (subformat == "streamOptimized")
            {
                // Whole grains, once each, in any order.
                var rnd = new Random(5);
                foreach (int grain in new[] { 3, 0, 40, 79, 12 })
                {
                    byte[] d = new byte[65536];
                    rnd.NextBytes(d.AsSpan(0, grain * 700));
                    await node.WriteAsync(grain * 65536L, d);
                    d.CopyTo(model, grain * 65536);
                }
            }
            else
            {
                await FillAsync(node, model, 17);
            }
        }

        string rawPath = dir.File("model.raw");
        await File.WriteAllBytesAsync(rawPath, model);
        var check = await Tools.RunAsync("qemu-img", "check", img);
        Assert.True(check.ExitCode == 0, check.Stdout + check.Stderr);
        (await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "vmdk", rawPath, img)).Ok();
    }

    internal static async Task FillAsync(BlockNode node, byte[] model, int seed)
    {
        var rnd = new Random(seed);
        int size = model.Length;
        for (int i = 0; i < 40; i++)
        {
            int off = rnd.Next(size);
            int len = Math.Min(rnd.Next(1, 200_000), size - off);
            if (i % 5 == 4)
            {
                await node.WriteZeroesAsync(off, len);
                Array.Clear(model, off, len);
                continue;
            }

            byte[] d = new byte[len];
            rnd.NextBytes(d);
            await node.WriteAsync(off, d);
            d.CopyTo(model, off);
        }

        byte[] last = new byte[512];
        rnd.NextBytes(last);
        await node.WriteAsync(size - 512, last);
        last.CopyTo(model, size - 512);
    }

    [Fact]
    public async Task Round_trip_raw_vmdk_qcow2_vmdk_raw_through_us()
    {
        using var dir = new TempDir();
        byte[] disk = MixedDisk(5, 23);
        string raw = dir.File("a.raw");
        await File.WriteAllBytesAsync(raw, disk);
        (await Tools.RunAsync("sharpblock", "img", "convert", "-f", "raw", "-O", "vmdk", raw, dir.File("b.vmdk"))).Ok();
        (await Tools.RunAsync("sharpblock", "img", "convert", "-O", "qcow2", dir.File("b.vmdk"), dir.File("c.qcow2"))).Ok();
        (await Tools.RunAsync("sharpblock", "img", "convert", "-O", "vmdk", "-o", "subformat=twoGbMaxExtentSparse", dir.File("c.qcow2"), dir.File("d.vmdk"))).Ok();
        (await Tools.RunAsync("sharpblock", "img", "convert", "-O", "raw", dir.File("d.vmdk"), dir.File("e.raw"))).Ok();
        Assert.Equal(disk, await File.ReadAllBytesAsync(dir.File("e.raw")));
    }

    [Theory]
    [InlineData("")]
    [InlineData("subformat=monolithicFlat")]
    [InlineData("subformat=twoGbMaxExtentSparse,zeroed_grain=on")]
    [InlineData("subformat=streamOptimized,adapter_type=buslogic")]
    [InlineData("adapter_type=legacyESX,hwversion=8,toolsversion=9")]
    [InlineData("compat6=on,zeroed_grain=off")]
    public async Task Create_prints_qemu_img_s_line_and_writes_its_layout(string options)
    {
        using var dir = new TempDir();
        string ours = dir.File("ours.vmdk"), theirs = dir.File("theirs.vmdk");
        var args = new List<string> { "create", "-f", "vmdk" };
        if (options != "")
            args.AddRange(["-o", options]);
        var a = (await Tools.RunAsync("sharpblock", ["img", .. args, ours, "3M"])).Ok();
        var b = (await Tools.RunAsync("qemu-img", [.. args, theirs, "3M"])).Ok();
        Assert.Equal(b.Stdout.Replace(theirs, "X", StringComparison.Ordinal), a.Stdout.Replace(ours, "X", StringComparison.Ordinal));
        // Same files, same bytes, apart from the random CID in the descriptor.
        var ourFiles = Directory.GetFiles(dir.Path, "ours*").Select(Path.GetFileName).Order().ToArray();
        var theirFiles = Directory.GetFiles(dir.Path, "theirs*").Select(Path.GetFileName).Order().ToArray();
        Assert.Equal(theirFiles.Select(f => f!.Replace("theirs", "ours", StringComparison.Ordinal)), ourFiles);
        foreach (var f in ourFiles)
        {
            byte[] x = await File.ReadAllBytesAsync(dir.File(f!));
            byte[] y = await File.ReadAllBytesAsync(dir.File(f!.Replace("ours", "theirs", StringComparison.Ordinal)));
            // A text descriptor's length follows the names in it; extents and sparse files must match in size.
            if (y.Length > VmdkLayoutDescriptorArea)
                Assert.Equal(y.Length, x.Length);
            Assert.Equal(MaskCid(y, "theirs"), MaskCid(x, "ours"));
        }

        using var info = JsonDocument.Parse((await Tools.RunAsync("qemu-img", "info", "--output=json", ours)).Ok().Stdout);
        Assert.Equal(3 << 20, info.RootElement.GetProperty("virtual-size").GetInt64());
    }

    private const int VmdkLayoutDescriptorArea = SharpBlock.Drivers.Format.Vmdk.VmdkLayout.DescriptorAreaBytes;

    private static string MaskCid(byte[] file, string stem)
    {
        // The CID's length varies, which moves the NUL padding after the descriptor: compare without NULs.
        string s = System.Text.Encoding.Latin1.GetString(file).Replace(stem, "STEM", StringComparison.Ordinal).Replace("\0", "", StringComparison.Ordinal);
        return System.Text.RegularExpressions.Regex.Replace(s, "\nCID=[0-9a-f]+\n", "\nCID=X\n");
    }

    [Theory]
    [InlineData("subformat=foo", "invalid parameter value: foo")]
    [InlineData("adapter_type=scsi", "invalid parameter value: scsi")]
    [InlineData("hwversion=6,compat6=on", "compat6 cannot be enabled with hwversion set")]
    [InlineData("subformat=monolithicFlat,zeroed_grain=on", "Flat image can't enable zeroed grain")]
    public async Task Create_refuses_what_qemu_img_refuses_in_its_words(string options, string message)
    {
        using var dir = new TempDir();
        var q = await Tools.RunAsync("qemu-img", "create", "-f", "vmdk", "-o", options, dir.File("q.vmdk"), "1M");
        Assert.Equal(1, q.ExitCode);
        Assert.Contains(message, q.Stderr, StringComparison.Ordinal);
        var r = await Tools.RunAsync("sharpblock", "img", "create", "-f", "vmdk", "-o", options, dir.File("o.vmdk"), "1M");
        Assert.Contains(message, r.OneLineError(), StringComparison.Ordinal);
        Assert.Equal(q.Stdout.Replace("q.vmdk", "X", StringComparison.Ordinal), r.Stdout.Replace("o.vmdk", "X", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Stream_refuses_to_rewrite_a_grain_as_qemu_does()
    {
        using var dir = new TempDir();
        string raw = dir.File("a.raw");
        await File.WriteAllBytesAsync(raw, MixedDisk(2, 1));
        string img = dir.File("s.vmdk");
        (await Tools.RunAsync("qemu-img", "convert", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, img)).Ok();
        var (g, node) = await OpenAsync(img, readOnly: false);
        await using (g)
        {
            var ex = await Assert.ThrowsAsync<SharpBlock.Errors.BlockException>(async () => await node.WriteAsync(0, new byte[65536]));
            Assert.Equal("Could not write to allocated cluster for streamOptimized", ex.Message);
            Assert.Equal(SharpBlock.Errors.Errno.EIO, ex.Errno);
        }
    }
}
