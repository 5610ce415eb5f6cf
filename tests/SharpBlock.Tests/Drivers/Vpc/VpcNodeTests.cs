using System.Buffers.Binary;
using SharpBlock.Drivers.Format.Vpc;
using SharpBlock.Drivers.Protocol.Memory;
using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Tests.Drivers.Vpc;

/// <summary>VHD over the memory node: frozen layout, geometry, QEMU 7.2's size rule, round trips, refusals.</summary>
public class VpcNodeTests
{
    internal static async Task<byte[]> NewImageAsync(VpcCreateOptions o)
    {
        var mem = new MemoryNode([], NodeSettings.Default, "new.vpc", 64L << 20);
        await using (mem)
        {
            await VpcCreator.CreateAsync(mem, o);
            return mem.ToArray();
        }
    }

    internal static MemoryNode Memory(byte[] image, bool readOnly = false) =>
        new(image, NodeSettings.Default with { ReadOnly = readOnly }, "test.vpc", image.Length + (32L << 20));

    private static ValueTask<VpcNode> OpenReadOnlyAsync(byte[] img) =>
        VpcNode.OpenAsync(Memory(img, true), NodeSettings.Default with { ReadOnly = true });

    /// <summary>Sets a footer field at <paramref name="footerAt"/> and its checksum again, as a tool that wrote it would.</summary>
    internal static void PatchFooter(byte[] img, int footerAt, int field, ReadOnlySpan<byte> value)
    {
        value.CopyTo(img.AsSpan(footerAt + field));
        uint sum = VpcLayout.Checksum(img.AsSpan(footerAt, VpcFooter.Size), VpcFooter.ChecksumOffset);
        BinaryPrimitives.WriteUInt32BigEndian(img.AsSpan(footerAt + VpcFooter.ChecksumOffset), sum);
    }

    [Fact]
    public void Layout_constants_are_frozen()
    {
        Assert.Equal(16, VpcFooter.DataOffsetOffset);
        Assert.Equal(28, VpcFooter.CreatorAppOffset);
        Assert.Equal(48, VpcFooter.CurrentSizeOffset);
        Assert.Equal(56, VpcFooter.CylindersOffset);
        Assert.Equal(60, VpcFooter.DiskTypeOffset);
        Assert.Equal(64, VpcFooter.ChecksumOffset);
        Assert.Equal(16, VpcDynamicHeader.TableOffsetOffset);
        Assert.Equal(28, VpcDynamicHeader.MaxTableEntriesOffset);
        Assert.Equal(32, VpcDynamicHeader.BlockSizeOffset);
        Assert.Equal(2190433320960L, VpcLayout.MaxSectors * 512);
        Assert.Equal(512, VpcLayout.BitmapSize(2 << 20));
        // QEMU's rounding gives a 512-byte block no bitmap at all.
        Assert.Equal(0, VpcLayout.BitmapSize(512));
    }

    [Theory]
    [InlineData(10L << 20, 20536, 302, 4, 17)]
    [InlineData(1000, 68, 1, 4, 17)]
    [InlineData(0, 0, 0, 0, 0)]
    [InlineData(200L << 30, 419430400, 65535, 16, 255)]
    public void New_images_round_up_to_a_geometry_as_qemu(long size, long sectors, int c, int h, int s)
    {
        var r = VpcGeometry.ForNewImage((size + 511) / 512);
        Assert.Equal((sectors, (ushort)c, (byte)h, (byte)s), r);
    }

    [Theory]
    [InlineData("vpc ", 20536L * 512)]
    [InlineData("qemu", 20536L * 512)]
    [InlineData("win ", 10L << 20)]
    [InlineData("d2v ", 10L << 20)]
    [InlineData("qem2", 10L << 20)]
    [InlineData("CTXS", 10L << 20)]
    [InlineData("tap\0", 10L << 20)]
    public async Task The_virtual_size_follows_the_creator_app(string creator, long expected)
    {
        byte[] img = await NewImageAsync(new VpcCreateOptions(10L << 20));
        foreach (int at in (int[])[0, img.Length - 512])
        {
            PatchFooter(img, at, VpcFooter.CreatorAppOffset, System.Text.Encoding.ASCII.GetBytes(creator));
            byte[] size = new byte[8];
            BinaryPrimitives.WriteUInt64BigEndian(size, 10UL << 20);
            PatchFooter(img, at, VpcFooter.CurrentSizeOffset, size);
        }

        await using var node = await OpenReadOnlyAsync(img);
        Assert.Equal(expected, node.Length);
    }

    [Fact]
    public async Task The_largest_geometry_means_current_size_whatever_the_creator()
    {
        byte[] img = await NewImageAsync(new VpcCreateOptions(300L << 20, ForceSize: true));
        PatchFooter(img, 0, VpcFooter.CreatorAppOffset, "vpc "u8);
        await using var node = await OpenReadOnlyAsync(img);
        Assert.Equal(300L << 20, node.Length);
    }

    [Fact]
    public async Task Concurrent_writes_into_the_same_new_blocks_all_land()
    {
        var mem = Memory(await NewImageAsync(new VpcCreateOptions(8 << 20)));
        var node = await VpcNode.OpenAsync(mem, NodeSettings.Default);
        var model = new byte[node.Length];
        var tasks = new List<Task>();
        // 64 writes of 4 KiB spread over four blocks, all racing to allocate them.
        for (int i = 0; i < 64; i++)
        {
            long at = (i % 4 * (2L << 20)) + (i / 4 * 8192);
            byte[] d = Enumerable.Repeat((byte)(i + 1), 4096).ToArray();
            d.CopyTo(model, at);
            tasks.Add(node.WriteAsync(at, d).AsTask());
        }

        await Task.WhenAll(tasks);
        await node.DisposeAsync();
        await using var again = await OpenReadOnlyAsync(mem.ToArray());
        byte[] got = new byte[model.Length];
        await again.ReadAsync(0, got);
        Assert.True(model.AsSpan().SequenceEqual(got));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Writes_read_back_after_reopen(bool isFixed)
    {
        byte[] img0 = await NewImageAsync(new VpcCreateOptions(7L << 20, isFixed));
        var mem = Memory(img0);
        var node = await VpcNode.OpenAsync(mem, NodeSettings.Default);
        long size = node.Length;
        var model = new byte[size];
        var rnd = new Random(5);
        for (int i = 0; i < 30; i++)
        {
            int off = rnd.Next((int)size - 1);
            int len = (int)Math.Min(rnd.Next(1, 300_000), size - off);
            byte[] d = new byte[len];
            rnd.NextBytes(d);
            await node.WriteAsync(off, d);
            d.CopyTo(model, off);
        }

        await node.WriteAsync(size - 512, Enumerable.Repeat((byte)0xEE, 512).ToArray());
        Array.Fill(model, (byte)0xEE, (int)size - 512, 512);
        await node.DisposeAsync();

        byte[] file = mem.ToArray();
        // The footer is the last sector again, and for a dynamic image the copy at 0 still matches it.
        Assert.True(VpcFooter.Read(file.AsSpan(file.Length - 512)).HasCookie);
        if (!isFixed)
            Assert.True(file.AsSpan(0, 512).SequenceEqual(file.AsSpan(file.Length - 512)));
        await using var again = await OpenReadOnlyAsync(file);
        byte[] got = new byte[size];
        await again.ReadAsync(0, got);
        Assert.True(model.AsSpan().SequenceEqual(got));
    }

    [Fact]
    public async Task The_bat_reaches_the_file_only_at_flush_after_the_data_and_footer()
    {
        var mem = Memory(await NewImageAsync(new VpcCreateOptions(8L << 20)));
        var node = await VpcNode.OpenAsync(mem, NodeSettings.Default);
        await using (node)
        {
            await node.WriteAsync(2 << 20, new byte[] { 9, 9, 9 });
            byte[] before = mem.ToArray();
            Assert.Equal(VpcLayout.Unallocated, BinaryPrimitives.ReadUInt32BigEndian(before.AsSpan(1536 + 4)));
            await node.FlushAsync();
            byte[] after = mem.ToArray();
            // The bitmap took the old footer's place (sector 4); the footer moved past the new block.
            Assert.Equal(4u, BinaryPrimitives.ReadUInt32BigEndian(after.AsSpan(1536 + 4)));
            Assert.Equal(2048 + 512 + (2 << 20) + 512, after.Length);
            Assert.True(after.AsSpan(2048, 512).ToArray().All(b => b == 0xff));
            var st = await node.GetBlockStatusAsync(2 << 20, 6 << 20);
            Assert.True(st.IsData && st.Offset == 2560 && st.Length == 2 << 20);
            st = await node.GetBlockStatusAsync(4 << 20, 4 << 20);
            Assert.True(st.IsZero && !st.IsData && st.Length == 4 << 20);
        }
    }

    private static async Task<string> RefusalAsync(byte[] img)
    {
        var ex = await Assert.ThrowsAnyAsync<BlockException>(async () => await OpenReadOnlyAsync(img));
        return ex.Message;
    }

    [Fact]
    public async Task Images_qemu_refuses_are_refused_with_its_words()
    {
        byte[] img = await NewImageAsync(new VpcCreateOptions(10L << 20));
        byte[] bad = (byte[])img.Clone();
        bad[VpcFooter.UuidOffset] ^= 1;
        Assert.Equal("Incorrect header checksum", await RefusalAsync(bad));

        bad = (byte[])img.Clone();
        bad.AsSpan(0, 8).Clear();
        bad.AsSpan(bad.Length - 512, 8).Clear();
        Assert.Equal("invalid VPC image", await RefusalAsync(bad));
        Assert.Equal("File too small for a VHD header", await RefusalAsync(new byte[100]));

        bad = (byte[])img.Clone();
        bad[512] = (byte)'X';
        Assert.Equal("Invalid header magic", await RefusalAsync(bad));

        bad = (byte[])img.Clone();
        BinaryPrimitives.WriteUInt32BigEndian(bad.AsSpan(512 + VpcDynamicHeader.BlockSizeOffset), 3000);
        Assert.Equal("Invalid block size 3000", await RefusalAsync(bad));

        bad = (byte[])img.Clone();
        BinaryPrimitives.WriteUInt32BigEndian(bad.AsSpan(512 + VpcDynamicHeader.MaxTableEntriesOffset), 2);
        Assert.Equal("Page table too small", await RefusalAsync(bad));

        bad = (byte[])img.Clone();
        BinaryPrimitives.WriteUInt32BigEndian(bad.AsSpan(1536), 100_000);
        Assert.Equal("block-vpc: free_data_block_offset points after the end of file. The image has been truncated.", await RefusalAsync(bad));

        bad = (byte[])img.Clone();
        byte[] size = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(size, 4UL << 40);
        PatchFooter(bad, 0, VpcFooter.CreatorAppOffset, "win "u8);
        PatchFooter(bad, 0, VpcFooter.CurrentSizeOffset, size);
        Assert.Equal("File too large", await RefusalAsync(bad));
    }

    [Fact]
    public async Task A_bat_beyond_the_file_is_refused_before_it_is_allocated()
    {
        byte[] img = await NewImageAsync(new VpcCreateOptions(10L << 20));
        byte[] bad = (byte[])img.Clone();
        BinaryPrimitives.WriteUInt32BigEndian(bad.AsSpan(512 + VpcDynamicHeader.MaxTableEntriesOffset), 100_000_000);
        Assert.Contains("lies beyond the end of the file", await RefusalAsync(bad), StringComparison.Ordinal);
        bad = (byte[])img.Clone();
        BinaryPrimitives.WriteUInt64BigEndian(bad.AsSpan(512 + VpcDynamicHeader.TableOffsetOffset), ulong.MaxValue - 4);
        Assert.Contains("lies beyond the end of the file", await RefusalAsync(bad), StringComparison.Ordinal);
        bad = (byte[])img.Clone();
        BinaryPrimitives.WriteUInt32BigEndian(bad.AsSpan(512 + VpcDynamicHeader.MaxTableEntriesOffset), 0x7fffffff);
        Assert.Equal("Max Table Entries too large (2147483647)", await RefusalAsync(bad));
    }

    [Fact]
    public async Task A_block_over_the_headers_is_readable_but_never_written()
    {
        byte[] small = await NewImageAsync(new VpcCreateOptions(10L << 20));
        // Room in the file for the block, so only the overlap with the dynamic header at sector 1 is wrong.
        byte[] img = new byte[small.Length + (3 << 20)];
        small.CopyTo(img, 0);
        BinaryPrimitives.WriteUInt32BigEndian(img.AsSpan(1536), 1);
        var node = await VpcNode.OpenAsync(Memory(img), NodeSettings.Default);
        await using (node)
        {
            await node.ReadAsync(0, new byte[4096]);
            await Assert.ThrowsAsync<ImageCorruptException>(async () => await node.WriteAsync(0, new byte[512]));
        }
    }

    [Fact]
    public async Task A_fixed_footer_at_byte_0_reads_the_file_as_qemu_but_takes_no_writes()
    {
        byte[] img = await NewImageAsync(new VpcCreateOptions(10L << 20));
        byte[] type = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(type, VpcLayout.TypeFixed);
        PatchFooter(img, 0, VpcFooter.DiskTypeOffset, type);
        var node = await VpcNode.OpenAsync(Memory(img), NodeSettings.Default);
        await using (node)
        {
            byte[] head = new byte[8];
            await node.ReadAsync(0, head);
            Assert.Equal("conectix"u8.ToArray(), head);
            await Assert.ThrowsAsync<ImageCorruptException>(async () => await node.WriteAsync(0, new byte[512]));
        }
    }

    [Fact]
    public async Task Creation_refuses_sizes_over_2040_GiB()
    {
        VpcCreator.Validate(new VpcCreateOptions(2040L << 30));
        var ex = Assert.Throws<BlockException>(() => VpcCreator.Validate(new VpcCreateOptions((2040L << 30) + 1)));
        Assert.Equal("The image size is too large for file format 'vpc'", ex.Message);
        byte[] img = await NewImageAsync(new VpcCreateOptions(0));
        Assert.Equal(2048, img.Length);
        byte[] fixedImg = await NewImageAsync(new VpcCreateOptions(1000, Fixed: true, ForceSize: true));
        Assert.Equal(1024 + 512, fixedImg.Length);
        Assert.Equal(0, new VpcFormat().Probe(fixedImg, "x"));
        Assert.Equal(100, new VpcFormat().Probe(img, "x"));
    }
}
