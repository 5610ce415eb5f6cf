using System.Buffers.Binary;
using SharpBlock.Drivers.Format.Vmdk;
using SharpBlock.Drivers.Protocol.Memory;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Testing;

namespace SharpBlock.Tests.Drivers.Vmdk;

/// <summary>Round trips through our driver: every subformat written and read back, before and after a reopen.</summary>
public class VmdkIoTests
{
    private static async Task FillAsync(BlockNode node, byte[] model, int seed)
    {
        var rnd = new Random(seed);
        for (int i = 0; i < 30; i++)
        {
            int off = rnd.Next(model.Length);
            int len = Math.Min(rnd.Next(1, 150_000), model.Length - off);
            if (i % 4 == 3)
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

    private static async Task AssertContentAsync(BlockNode node, byte[] model)
    {
        byte[] got = new byte[model.Length];
        await node.ReadAsync(0, got);
        Assert.True(model.AsSpan().SequenceEqual(got), "content differs");
    }

    [Theory]
    [InlineData(VmdkSubformat.MonolithicSparse, false)]
    [InlineData(VmdkSubformat.MonolithicSparse, true)]
    [InlineData(VmdkSubformat.MonolithicFlat, false)]
    [InlineData(VmdkSubformat.TwoGbMaxExtentSparse, true)]
    [InlineData(VmdkSubformat.TwoGbMaxExtentFlat, false)]
    public async Task Writes_read_back_before_and_after_reopen(VmdkSubformat subformat, bool zeroedGrain)
    {
        using var dir = new TempDir();
        string p = dir.File("a.vmdk");
        const int size = (3 << 20) + 1536;
        await VmdkCreator.CreateAsync(p, new VmdkCreateOptions { Size = size, Subformat = subformat, ZeroedGrain = zeroedGrain });
        var model = new byte[size];
        await using (var img = await VmdkTestImage.OpenAsync(p))
        {
            Assert.Equal(size, img.Node.Length);
            await FillAsync(img.Node, model, (int)subformat);
            await AssertContentAsync(img.Node, model);
        }

        await using (var img = await VmdkTestImage.OpenAsync(p, readOnly: true))
            await AssertContentAsync(img.Node, model);
    }

    [Fact]
    public async Task Whole_zero_grains_become_zeroed_entries_and_the_tables_follow_the_data()
    {
        using var dir = new TempDir();
        string p = dir.File("z.vmdk");
        await VmdkCreator.CreateAsync(p, new VmdkCreateOptions { Size = 4 << 20, ZeroedGrain = true });
        byte[] data = new byte[65536];
        Array.Fill(data, (byte)7);
        await using (var img = await VmdkTestImage.OpenAsync(p))
        {
            await img.Node.WriteAsync(0, data);
            await img.Node.WriteZeroesAsync(65536, 65536);
            // Until a flush the new entries live in memory only: the grain is on disk, the table on disk is not changed.
            Assert.Equal(0u, await GteAsync(p, 0));
            await img.Node.FlushAsync();
            Assert.Equal(128u, await GteAsync(p, 0));
            Assert.Equal(VmdkLayout.GteZeroed, await GteAsync(p, 1));
            var st = await img.Node.GetBlockStatusAsync(65536, 65536);
            Assert.True(st.IsZero && st.IsAllocated);
        }
    }

    /// <summary>The primary grain table entry of a grain, read from the file, and its redundant twin, which must agree.</summary>
    private static async Task<uint> GteAsync(string path, int grain)
    {
        byte[] f = await File.ReadAllBytesAsync(path);
        var h = VmdkSparseHeader.Read(f);
        uint gt = BinaryPrimitives.ReadUInt32LittleEndian(f.AsSpan((int)h.GdOffset * 512));
        uint rgt = BinaryPrimitives.ReadUInt32LittleEndian(f.AsSpan((int)h.RgdOffset * 512));
        uint e = BinaryPrimitives.ReadUInt32LittleEndian(f.AsSpan(((int)gt * 512) + (grain * 4)));
        Assert.Equal(e, BinaryPrimitives.ReadUInt32LittleEndian(f.AsSpan(((int)rgt * 512) + (grain * 4))));
        return e;
    }

    [Fact]
    public async Task A_vmware_stream_with_its_directory_in_the_footer_reads_over_a_memory_node()
    {
        var rnd = new Random(3);
        var grains = new Dictionary<int, byte[]>();
        foreach (int g in new[] { 0, 5, 600, 1023 })
        {
            byte[] d = new byte[65536];
            rnd.NextBytes(d.AsSpan(0, 1000 * (g % 7 + 1)));
            grains[g] = d;
        }

        const long sectors = 1024 * 128;
        byte[] image = VmdkTestImage.VmwareStream(sectors, grains);
        await using var file = new MemoryNode(image, NodeSettings.Default with { ReadOnly = true }, "s.vmdk");
        await using var node = await VmdkNode.OpenAsync(file, NodeSettings.Default with { ReadOnly = true });
        Assert.Equal("streamOptimized", node.CreateType);
        Assert.Equal(0x1234abcdu, node.Cid);
        var model = new byte[sectors * 512];
        foreach (var (g, d) in grains)
            d.CopyTo(model, g * 65536L);
        await AssertContentAsync(node, model);
        var st = await node.GetBlockStatusAsync(5 * 65536, 65536);
        Assert.True(st.IsData && st.IsAllocated);
        Assert.False((await node.GetBlockStatusAsync(65536, 65536)).IsAllocated);
    }

    [Fact]
    public async Task Stream_writes_take_whole_grains_once()
    {
        using var dir = new TempDir();
        string p = dir.File("s.vmdk");
        await VmdkCreator.CreateAsync(p, new VmdkCreateOptions { Size = 1 << 20, Subformat = VmdkSubformat.StreamOptimized });
        byte[] grain = new byte[65536];
        new Random(1).NextBytes(grain);
        await using (var img = await VmdkTestImage.OpenAsync(p))
        {
            await img.Node.WriteAsync(65536, grain);
            var partial = await Assert.ThrowsAsync<BlockException>(async () => await img.Node.WriteAsync(0, new byte[4096]));
            Assert.Equal(Errno.EINVAL, partial.Errno);
            var again = await Assert.ThrowsAsync<BlockException>(async () => await img.Node.WriteAsync(65536, grain));
            Assert.Equal("Could not write to allocated cluster for streamOptimized", again.Message);
        }

        await using (var img = await VmdkTestImage.OpenAsync(p, readOnly: true))
        {
            byte[] got = new byte[65536];
            await img.Node.ReadAsync(65536, got);
            Assert.Equal(grain, got);
            var info = await img.Node.GetImageInfoAsync();
            Assert.True(info.FormatSpecific!.Vmdk!.Extents[0].Compressed);
        }
    }

    [Fact]
    public async Task A_stream_we_write_ends_with_tables_footer_and_end_marker_that_stream_readers_can_use()
    {
        using var dir = new TempDir();
        string p = dir.File("s.vmdk");
        await VmdkCreator.CreateAsync(p, new VmdkCreateOptions { Size = 40 << 20, Subformat = VmdkSubformat.StreamOptimized });
        var model = new byte[40 << 20];
        var rnd = new Random(6);
        await using (var img = await VmdkTestImage.OpenAsync(p))
        {
            foreach (int g in new[] { 0, 7, 511, 512, 639 })
            {
                byte[] d = new byte[65536];
                rnd.NextBytes(d.AsSpan(0, 5000));
                await img.Node.WriteAsync(g * 65536L, d);
                d.CopyTo(model, g * 65536L);
            }
        }

        byte[] file = await File.ReadAllBytesAsync(p);
        Assert.Equal(VmdkLayout.MarkerEndOfStream, VmdkMarker.Read(file.AsSpan(file.Length - 512)).Type);
        Assert.Equal(VmdkLayout.MarkerFooter, VmdkMarker.Read(file.AsSpan(file.Length - 1536)).Type);
        // Read it as a stream reader would: the header says "directory at the end", so only the footer's copy counts.
        BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(VmdkSparseHeader.GdOffsetOffset), VmdkLayout.GdAtEnd);
        BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(VmdkSparseHeader.RgdOffsetOffset), 0);
        await using var mem = new MemoryNode(file, NodeSettings.Default with { ReadOnly = true }, "s.vmdk");
        await using var node = await VmdkNode.OpenAsync(mem, NodeSettings.Default with { ReadOnly = true });
        await AssertContentAsync(node, model);
    }

    [Fact]
    public async Task A_child_reads_through_to_its_parent_and_copies_the_rest_of_a_grain()
    {
        using var dir = new TempDir();
        string parent = dir.File("p.vmdk"), child = dir.File("c.vmdk");
        await VmdkCreator.CreateAsync(parent, new VmdkCreateOptions { Size = 1 << 20 });
        byte[] a = new byte[1 << 20];
        new Random(2).NextBytes(a);
        await using (var img = await VmdkTestImage.OpenAsync(parent))
            await img.Node.WriteAsync(0, a);
        await VmdkCreator.CreateAsync(child, new VmdkCreateOptions { Size = 1 << 20, BackingFile = "p.vmdk" });
        await using (var img = await VmdkTestImage.OpenAsync(child))
        {
            Assert.Equal("p.vmdk", img.Node.BackingFileName);
            Assert.Equal("vmdk", img.Node.BackingFormat);
            await img.Node.WriteAsync(70000, new byte[100]);
            Array.Clear(a, 70000, 100);
            await AssertContentAsync(img.Node, a);
        }
    }
}
