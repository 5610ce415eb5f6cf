using SharpBlock.Drivers;
using SharpBlock.Drivers.Format.Qcow2;
using SharpBlock.Graph;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Qcow2;

/// <summary>Our images judged by qemu-img; qemu's images read back through us byte for byte.</summary>
public class Qcow2InteropTests
{
    private static async Task<(BlockGraph, BlockNode)> OpenAsync(string path, bool readOnly, string format = "qcow2")
    {
        var g = new BlockGraph();
        var o = ImageFormats.ImageOptions(path, format, readOnly, "n0");
        o.Discard = SharpBlock.Schema.BlockdevDiscardOptions.Unmap;
        return (g, await g.AddAsync(o));
    }

    private static async Task FillAsync(BlockNode node, byte[] model, int seed)
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
    }

    [Theory]
    [InlineData("0.10", 512, 16)]
    [InlineData("0.10", 65536, 16)]
    [InlineData("1.1", 512, 1)]
    [InlineData("1.1", 65536, 16)]
    [InlineData("1.1", 65536, 64)]
    [InlineData("1.1", 2097152, 16)]
    [InlineData("1.1", 4096, 1)]
    public async Task Images_we_create_and_fill_pass_qemu_img_check_and_compare(string compat, int clusterSize, int refcountBits)
    {
        using var dir = new TempDir();
        string img = dir.File("ours.qcow2");
        string raw = dir.File("model.raw");
        int size = 4 << 20;
        await Qcow2Creator.CreateAsync(img, new Qcow2CreateOptions { Size = size, Compat = compat, ClusterSize = clusterSize, RefcountBits = refcountBits });
        var model = new byte[size];
        var (g, node) = await OpenAsync(img, readOnly: false);
        await using (g)
            await FillAsync(node, model, clusterSize + refcountBits);
        await File.WriteAllBytesAsync(raw, model);
        var check = await Tools.RunAsync("qemu-img", "check", img);
        Assert.True(check.ExitCode == 0, check.Stdout + check.Stderr);
        Assert.Contains("No errors were found on the image.", check.Stdout, StringComparison.Ordinal);
        (await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "qcow2", raw, img)).Ok();
        var info = (await Tools.RunAsync("qemu-img", "info", img)).Ok();
        Assert.Contains("compat: " + compat, info.Stdout, StringComparison.Ordinal);
        Assert.Contains($"refcount bits: {refcountBits}", info.Stdout, StringComparison.Ordinal);
    }

    private static async Task AssertReadsLikeQemuAsync(TempDir dir, string img)
    {
        string expect = dir.File("expect.raw");
        (await Tools.RunAsync("qemu-img", "convert", "-O", "raw", img, expect)).Ok();
        byte[] want = await File.ReadAllBytesAsync(expect);
        var (g, node) = await OpenAsync(img, readOnly: true);
        await using (g)
        {
            Assert.Equal(want.Length, node.Length);
            byte[] got = new byte[want.Length];
            await node.ReadAsync(0, got);
            Assert.True(want.AsSpan().SequenceEqual(got), "content differs from qemu-img convert's");
        }

        var ours = await Tools.RunAsync("sharpblock", "img", "map", "--output=json", img);
        var theirs = await Tools.RunAsync("qemu-img", "map", "--output=json", img);
        Assert.Equal(theirs.Stdout, ours.Stdout);
    }

    private static Task<Tools.Result> QemuIo(string img, params string[] cmds)
    {
        var args = new List<string> { "-d", "unmap" };
        foreach (var c in cmds)
        {
            args.Add("-c");
            args.Add(c);
        }

        args.Add(img);
        return Tools.RunAsync("qemu-io", args);
    }

    [Fact]
    public async Task Backing_chain_made_by_qemu_reads_byte_for_byte()
    {
        using var dir = new TempDir();
        string b = dir.File("base.qcow2");
        string t = dir.File("top.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-f", "qcow2", b, "3M")).Ok();
        (await QemuIo(b, "write -P 0x11 0 1M", "write -P 0x22 2M 512k")).Ok();
        (await Tools.RunAsync("qemu-img", "create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", t, "4M")).Ok();
        (await QemuIo(t, "write -P 0x33 512k 100k", "write -z 2M 64k", "write -P 0x44 3M 4k")).Ok();
        await AssertReadsLikeQemuAsync(dir, t);
        var info = await Tools.RunAsync("sharpblock", "img", "info", "--backing-chain", t);
        Assert.Contains("backing file: base.qcow2", info.Stdout, StringComparison.Ordinal);
        Assert.Contains("image: " + b, info.Stdout, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("compat=1.1")]
    [InlineData("compat=0.10")]
    public async Task Zero_writes_and_discards_made_by_qemu_read_byte_for_byte(string options)
    {
        using var dir = new TempDir();
        string img = dir.File("z.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-f", "qcow2", "-o", options, img, "2M")).Ok();
        (await QemuIo(img, "write -P 0x55 0 2M", "write -z 64k 128k", "discard 512k 256k", "write -z -u 1M 64k", "write -P 1 1000 10")).Ok();
        await AssertReadsLikeQemuAsync(dir, img);
    }

    [Fact]
    public async Task Compressed_images_made_by_qemu_read_byte_for_byte()
    {
        using var dir = new TempDir();
        string raw = dir.File("src.raw");
        var data = new byte[3 << 20];
        for (int i = 0; i < data.Length; i++)
            data[i] = (byte)(i % 251 < 100 ? i / 4096 : 0);
        new Random(5).NextBytes(data.AsSpan(1 << 20, 100_000));
        await File.WriteAllBytesAsync(raw, data);
        string img = dir.File("c.qcow2");
        (await Tools.RunAsync("qemu-img", "convert", "-c", "-O", "qcow2", raw, img)).Ok();
        await AssertReadsLikeQemuAsync(dir, img);
    }

    [Fact]
    public async Task Images_with_internal_snapshots_read_and_check_clean()
    {
        using var dir = new TempDir();
        string img = dir.File("s.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-f", "qcow2", img, "2M")).Ok();
        (await QemuIo(img, "write -P 1 0 1M")).Ok();
        (await Tools.RunAsync("qemu-img", "snapshot", "-c", "snap1", img)).Ok();
        (await QemuIo(img, "write -P 2 64k 64k")).Ok();
        await AssertReadsLikeQemuAsync(dir, img);
        var check = await Tools.RunAsync("sharpblock", "img", "check", img);
        Assert.Equal(0, check.ExitCode);
        var info = await Tools.RunAsync("sharpblock", "img", "info", img);
        Assert.Contains("snap1", info.Stdout, StringComparison.Ordinal);

        // Writing through us into clusters shared with the snapshot must copy them, and stay consistent.
        var (g, node) = await OpenAsync(img, readOnly: false);
        await using (g)
            await node.WriteAsync(4096, new byte[] { 9, 9, 9 });
        var qcheck = await Tools.RunAsync("qemu-img", "check", img);
        Assert.True(qcheck.ExitCode == 0, qcheck.Stdout + qcheck.Stderr);
        (await Tools.RunAsync("qemu-img", "snapshot", "-a", "snap1", img)).Ok();
        var r = (await Tools.RunAsync("qemu-io", "-c", "read -P 1 0 1M", img)).Ok();
        Assert.DoesNotContain("Pattern verification failed", r.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Check_finds_the_leaks_qemu_img_finds_and_repairs_them()
    {
        using var dir = new TempDir();
        string img = dir.File("l.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-f", "qcow2", img, "4M")).Ok();
        (await QemuIo(img, "write -P 3 0 256k")).Ok();
        // Leak: bump the refcount of a cluster appended past the end; nothing references it.
        byte[] file = await File.ReadAllBytesAsync(img);
        var h = Qcow2Header.Read(file);
        long rb = (long)System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(file.AsSpan((int)h.RefcountTableOffset));
        long nextCluster = file.Length / 65536;
        Array.Resize(ref file, file.Length + (2 * 65536));
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(file.AsSpan((int)(rb + (nextCluster * 2))), 1);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(file.AsSpan((int)(rb + ((nextCluster + 1) * 2))), 1);
        await File.WriteAllBytesAsync(img, file);

        var theirs = await Tools.RunAsync("qemu-img", "check", "--output=json", img);
        var ours = await Tools.RunAsync("sharpblock", "img", "check", "--output=json", img);
        Assert.Equal(3, theirs.ExitCode);
        Assert.Equal(3, ours.ExitCode);
        Assert.Contains("\"leaks\": 2", theirs.Stdout, StringComparison.Ordinal);
        Assert.Contains("\"leaks\": 2", ours.Stdout, StringComparison.Ordinal);
        var human = await Tools.RunAsync("sharpblock", "img", "check", img);
        Assert.Contains("2 leaked clusters were found on the image.", human.Stdout, StringComparison.Ordinal);
        Assert.Contains($"Leaked cluster {nextCluster} refcount=1 reference=0", human.Stderr, StringComparison.Ordinal);

        var fix = await Tools.RunAsync("sharpblock", "img", "check", "-r", "leaks", img);
        Assert.Equal(0, fix.ExitCode);
        Assert.Contains("2 leaked clusters", fix.Stdout, StringComparison.Ordinal);
        (await Tools.RunAsync("qemu-img", "check", img)).Ok();
    }

    [Fact]
    public async Task Corruption_is_found_and_repaired_with_r_all()
    {
        using var dir = new TempDir();
        string img = dir.File("c.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-f", "qcow2", img, "4M")).Ok();
        (await QemuIo(img, "write -P 3 0 128k")).Ok();
        byte[] file = await File.ReadAllBytesAsync(img);
        var h = Qcow2Header.Read(file);
        long rb = (long)System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(file.AsSpan((int)h.RefcountTableOffset));
        long last = (file.Length / 65536) - 1;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(file.AsSpan((int)(rb + (last * 2))), 0);
        await File.WriteAllBytesAsync(img, file);
        Assert.Equal(2, (await Tools.RunAsync("qemu-img", "check", img)).ExitCode);
        Assert.Equal(2, (await Tools.RunAsync("sharpblock", "img", "check", img)).ExitCode);
        var fix = await Tools.RunAsync("sharpblock", "img", "check", "-r", "all", img);
        Assert.True(fix.ExitCode == 0, fix.Stdout + fix.Stderr);
        (await Tools.RunAsync("qemu-img", "check", img)).Ok();
        var r = (await Tools.RunAsync("qemu-io", "-c", "read -P 3 0 128k", img)).Ok();
        Assert.DoesNotContain("Pattern verification failed", r.Stdout, StringComparison.Ordinal);
    }
}
