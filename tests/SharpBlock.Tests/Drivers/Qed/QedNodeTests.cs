using System.Buffers.Binary;
using SharpBlock.Drivers;
using SharpBlock.Drivers.Format.Qed;
using SharpBlock.Drivers.Protocol.Memory;
using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Tests.Drivers.Qed;

/// <summary>QED over the memory node: frozen layout, round trips, the need-check bit, tables after data, and QEMU's refusals.</summary>
public class QedNodeTests
{
    internal static async Task<byte[]> NewImageAsync(long size, uint clusterSize = 65536, uint tableSize = 4, string? backing = null, string? backingFormat = null)
    {
        var mem = new MemoryNode([], NodeSettings.Default, "new.qed", 64L << 20);
        await using (mem)
        {
            await QedCreator.CreateAsync(mem, new QedCreateOptions { Size = size, ClusterSize = clusterSize, TableSize = tableSize, BackingFile = backing, BackingFormat = backingFormat });
            return mem.ToArray();
        }
    }

    internal static MemoryNode Memory(byte[] image, bool readOnly = false) =>
        new(image, NodeSettings.Default with { ReadOnly = readOnly }, "test.qed", image.Length + (32L << 20));

    [Fact]
    public void Layout_constants_are_frozen()
    {
        Assert.Equal(0x00444551u, QedLayout.Magic);
        Assert.Equal(64, QedHeader.Size);
        Assert.Equal(1UL, QedLayout.FeatureBackingFile);
        Assert.Equal(2UL, QedLayout.FeatureNeedCheck);
        Assert.Equal(4UL, QedLayout.FeatureBackingFormatNoProbe);
        // 4 KiB clusters and one-cluster tables address exactly 1 GiB; 2 MiB x 16 wraps to 0 as in QEMU.
        Assert.Equal(1UL << 30, QedLayout.MaxImageSize(4096, 1));
        Assert.Equal(0UL, QedLayout.MaxImageSize(2 << 20, 16));
    }

    [Theory]
    [InlineData(10L << 20, 65536u, 4u, 5 * 65536)]
    [InlineData(1000, 65536u, 4u, 5 * 65536)]
    [InlineData(5L << 20, 4096u, 2u, 3 * 4096)]
    [InlineData(0, 65536u, 4u, 5 * 65536)]
    public async Task New_images_have_qemus_layout(long size, uint cluster, uint table, long fileLength)
    {
        byte[] img = await NewImageAsync(size, cluster, table);
        Assert.Equal(fileLength, img.Length);
        var h = QedHeader.Read(img);
        Assert.Equal(QedLayout.Magic, h.Magic);
        Assert.Equal(cluster, h.ClusterSize);
        Assert.Equal(table, h.TableSize);
        Assert.Equal(1u, h.HeaderSize);
        Assert.Equal(0UL, h.Features);
        Assert.Equal(cluster, h.L1TableOffset);
        Assert.Equal((ulong)((size + 511) & ~511L), h.ImageSize);
        Assert.Equal(100, new QedFormat().Probe(img, "x"));
        Assert.Equal(0, new QedFormat().Probe(img.AsSpan(0, 10), "x"));
    }

    [Theory]
    [InlineData("base.raw", "raw", 5UL)]
    [InlineData("base.qed", "qed", 1UL)]
    [InlineData("base.img", null, 1UL)]
    public async Task Backing_name_follows_the_header_and_only_raw_is_recorded(string name, string? fmt, ulong features)
    {
        byte[] img = await NewImageAsync(1 << 20, backing: name, backingFormat: fmt);
        var h = QedHeader.Read(img);
        Assert.Equal(features, h.Features);
        Assert.Equal(64u, h.BackingFilenameOffset);
        Assert.Equal(name, System.Text.Encoding.UTF8.GetString(img, 64, (int)h.BackingFilenameSize));
        await using var node = await QedNode.OpenAsync(Memory(img, true), NodeSettings.Default with { ReadOnly = true });
        Assert.Equal(name, node.BackingFileName);
        Assert.Equal(fmt == "raw" ? "raw" : null, node.BackingFormat);
    }

    [Theory]
    [InlineData(65536u, 4u)]
    [InlineData(4096u, 2u)]
    public async Task Writes_read_back_after_reopen_and_check_clean(uint cluster, uint table)
    {
        const int size = 6 << 20;
        var mem = Memory(await NewImageAsync(size, cluster, table));
        var model = new byte[size];
        var rnd = new Random(3);
        var node = await QedNode.OpenAsync(mem, NodeSettings.Default);
        for (int i = 0; i < 40; i++)
        {
            int off = rnd.Next(size - 1);
            int len = Math.Min(rnd.Next(1, 300_000), size - off);
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

        // Writing set the need-check bit durably; the clean close clears it.
        Assert.True(QedHeader.Read(mem.ToArray()).NeedCheck);
        var check = await node.CheckAsync(ImageCheckMode.None, null);
        Assert.Equal(0, check.Corruptions + check.Leaks);
        await node.DisposeAsync();
        Assert.False(QedHeader.Read(mem.ToArray()).NeedCheck);

        var again = await QedNode.OpenAsync(Memory(mem.ToArray(), true), NodeSettings.Default with { ReadOnly = true });
        await using (again)
        {
            byte[] back = new byte[size];
            await again.ReadAsync(0, back);
            Assert.Equal(model, back);
        }
    }

    [Fact]
    public async Task Allocation_puts_data_before_its_l2_table_and_tables_reach_disk_only_at_flush()
    {
        var mem = Memory(await NewImageAsync(10 << 20));
        var node = await QedNode.OpenAsync(mem, NodeSettings.Default);
        await using (node)
        {
            await node.WriteAsync(0, new byte[] { 1, 2, 3 });
            byte[] before = mem.ToArray();
            // Data cluster at the old end of file (5 clusters in), L1 still empty on disk until the flush.
            Assert.Equal(1, before[5 * 65536]);
            Assert.Equal(0UL, BinaryPrimitives.ReadUInt64LittleEndian(before.AsSpan(65536)));
            await node.FlushAsync();
            byte[] after = mem.ToArray();
            Assert.Equal(6UL * 65536, BinaryPrimitives.ReadUInt64LittleEndian(after.AsSpan(65536)));
            Assert.Equal(5UL * 65536, BinaryPrimitives.ReadUInt64LittleEndian(after.AsSpan(6 * 65536)));
        }
    }

    [Fact]
    public async Task Whole_cluster_zeroes_become_zero_entries_and_map_as_zero()
    {
        var mem = Memory(await NewImageAsync(1 << 20));
        var node = await QedNode.OpenAsync(mem, NodeSettings.Default);
        await using (node)
        {
            await node.WriteZeroesAsync(65536, 131072);
            var st = await node.GetBlockStatusAsync(65536, 131072);
            Assert.True(st.IsZero);
            Assert.Equal(131072, st.Length);
            var first = await node.GetBlockStatusAsync(0, 65536);
            Assert.True(first.IsZero);
        }
    }

    [Fact]
    public async Task Grows_but_refuses_to_shrink_or_unaligned_sizes()
    {
        var mem = Memory(await NewImageAsync(1 << 20));
        var node = await QedNode.OpenAsync(mem, NodeSettings.Default);
        await using (node)
        {
            await node.TruncateAsync(2 << 20);
            Assert.Equal(2 << 20, node.Length);
            Assert.Equal("Shrinking images is currently not supported", (await Assert.ThrowsAsync<BlockException>(() => node.TruncateAsync(1 << 20).AsTask())).Message);
            Assert.Equal("Invalid image size specified", (await Assert.ThrowsAsync<BlockException>(() => node.TruncateAsync((2 << 20) + 1000).AsTask())).Message);
        }

        Assert.Equal(2UL << 20, QedHeader.Read(mem.ToArray()).ImageSize);
    }

    [Theory]
    [InlineData(1000u, 4u, 1L << 20, "QED cluster size must be within range [4096, 67108864] and power of 2")]
    [InlineData(65536u, 3u, 1L << 20, "QED table size must be within range [1, 16] and power of 2")]
    [InlineData(2u << 20, 16u, 1L << 20, "QED image size must be a non-zero multiple of cluster size and less than 0 bytes")]
    [InlineData(4096u, 1u, 1L << 40, "QED image size must be a non-zero multiple of cluster size and less than 1073741824 bytes")]
    public void Creation_refuses_as_qemu_img(uint cluster, uint table, long size, string message)
    {
        var ex = Assert.Throws<BlockException>(() => QedCreator.Validate(new QedCreateOptions { Size = size, ClusterSize = cluster, TableSize = table }));
        Assert.Equal(message, ex.Message);
    }

    [Theory]
    [InlineData(0, 0x12, "Image not in QED format")]
    [InlineData(0x10, 0x80, "Unsupported QED features: 80")]
    [InlineData(0x05, 0x03, "QED cluster size is invalid")]
    [InlineData(0x08, 0x03, "QED table size is invalid")]
    [InlineData(0x08, 0x01, "QED table offset is invalid")]
    [InlineData(0x30, 0x07, "QED image size is invalid")]
    [InlineData(0x0c, 0x77, "QED table offset is invalid")]
    [InlineData(0x28, 0x13, "QED table offset is invalid")]
    [InlineData(0x2d, 0x01, "QED table offset is invalid")]
    public async Task Hostile_headers_are_refused_naming_the_field(int at, byte value, string expected)
    {
        byte[] img = await NewImageAsync(1 << 20);
        img[at] = value;
        var ex = await Assert.ThrowsAnyAsync<BlockException>(() => QedNode.OpenAsync(Memory(img, true), NodeSettings.Default with { ReadOnly = true }).AsTask());
        Assert.Equal(expected, ex.Message);
    }

    [Fact]
    public async Task Hostile_backing_name_outside_the_header_is_refused()
    {
        byte[] img = await NewImageAsync(1 << 20, backing: "b.raw");
        BinaryPrimitives.WriteUInt32LittleEndian(img.AsSpan(0x3c), 70000);
        var ex = await Assert.ThrowsAnyAsync<BlockException>(() => QedNode.OpenAsync(Memory(img, true), NodeSettings.Default with { ReadOnly = true }).AsTask());
        Assert.Equal("QED backing filename offset is invalid", ex.Message);
    }

    [Fact]
    public async Task Hostile_table_entries_fail_io_and_check_counts_then_repairs_them()
    {
        var mem = Memory(await NewImageAsync(1 << 20));
        var node = await QedNode.OpenAsync(mem, NodeSettings.Default);
        await node.WriteAsync(0, new byte[70000]);
        await node.DisposeAsync();
        byte[] img = mem.ToArray();
        // L2 entry 0 (at the L2 table, 7 clusters in: 5 for header and L1, 2 data clusters) points into nowhere.
        long l2 = (long)BinaryPrimitives.ReadUInt64LittleEndian(img.AsSpan(65536));
        BinaryPrimitives.WriteUInt64LittleEndian(img.AsSpan((int)l2), 0x7fff_0000_0000);
        var bad = await QedNode.OpenAsync(Memory(img, true), NodeSettings.Default with { ReadOnly = true });
        await using (bad)
        {
            await Assert.ThrowsAsync<ImageCorruptException>(() => bad.ReadAsync(0, new byte[512]).AsTask());
            var r = await bad.CheckAsync(ImageCheckMode.None, null);
            Assert.Equal(1, r.Corruptions);
            Assert.Equal(1, r.Leaks);
        }

        var fixable = await QedNode.OpenAsync(Memory(img), NodeSettings.Default with { ReadOnly = true });
        await fixable.DisposeAsync();
        var rw = Memory(img);
        var fixing = await QedNode.OpenAsync(rw, NodeSettings.Default);
        await using (fixing)
        {
            var r = await fixing.CheckAsync(ImageCheckMode.All, null);
            Assert.Equal(0, r.Corruptions);
            var again = await fixing.CheckAsync(ImageCheckMode.None, null);
            Assert.Equal(0, again.Corruptions);
            Assert.Equal(1, again.Leaks);
            byte[] back = new byte[512];
            await fixing.ReadAsync(0, back);
            Assert.All(back, b => Assert.Equal(0, b));
        }
    }

    [Fact]
    public async Task A_dirty_image_is_checked_and_marked_clean_when_opened_for_writing()
    {
        byte[] img = await NewImageAsync(1 << 20);
        img[0x10] = (byte)QedLayout.FeatureNeedCheck;
        var ro = await QedNode.OpenAsync(Memory(img, true), NodeSettings.Default with { ReadOnly = true });
        // Read-only, it opens as it is (QEMU's way to help recover data from it).
        Assert.True(ro.Header.NeedCheck);
        await ro.DisposeAsync();
        var mem = Memory(img);
        await (await QedNode.OpenAsync(mem, NodeSettings.Default)).DisposeAsync();
        Assert.False(QedHeader.Read(mem.ToArray()).NeedCheck);
    }
}
