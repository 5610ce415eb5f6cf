using System.Buffers.Binary;
using SharpBlock.Drivers.Format.Qcow;
using SharpBlock.Drivers.Protocol.Memory;
using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Tests.Drivers.Qcow;

/// <summary>qcow (version 1) over the memory node: frozen layout, round trips, tables after data, and QEMU's refusals.</summary>
public class QcowNodeTests
{
    internal static byte[] NewImage(long size, string? backing = null) => QcowCreator.Build(size, backing);

    internal static MemoryNode Memory(byte[] image, bool readOnly = false) =>
        new(image, NodeSettings.Default with { ReadOnly = readOnly }, "test.qcow", image.Length + (32L << 20));

    [Fact]
    public void Layout_constants_are_frozen()
    {
        Assert.Equal(0x514649fbu, QcowLayout.Magic);
        Assert.Equal(48, QcowHeader.Size);
        Assert.Equal(0x18, QcowHeader.SizeOffset);
        Assert.Equal(0x20, QcowHeader.ClusterBitsOffset);
        Assert.Equal(0x21, QcowHeader.L2BitsOffset);
        Assert.Equal(0x24, QcowHeader.CryptMethodOffset);
        Assert.Equal(0x28, QcowHeader.L1TableOffsetOffset);
    }

    [Theory]
    [InlineData(10L << 20, null, 12, 9, 48, 48 + 512)]
    [InlineData(1000, null, 12, 9, 48, 48 + 512)]
    [InlineData(10L << 20, "base.qcow", 9, 12, 64, 64 + 512)]
    public void New_images_have_qemus_layout(long size, string? backing, int clusterBits, int l2Bits, int l1At, int fileLength)
    {
        byte[] img = NewImage(size, backing);
        Assert.Equal(fileLength, img.Length);
        var h = QcowHeader.Read(img);
        Assert.Equal(1u, h.Version);
        Assert.Equal((ulong)((size + 511) & ~511L), h.DiskSize);
        Assert.Equal(clusterBits, h.ClusterBits);
        Assert.Equal(l2Bits, h.L2Bits);
        Assert.Equal((ulong)l1At, h.L1TableOffset);
    }

    [Fact]
    public async Task Writes_read_back_and_survive_reopen_with_tables_after_data()
    {
        var mem = Memory(NewImage(20L << 20));
        var rnd = new Random(7);
        byte[] model = new byte[20 << 20];
        var node = await QcowNode.OpenAsync(mem, NodeSettings.Default);
        await using (node)
        {
            foreach (long at in (long[])[0, 4095, 3 << 20, (20 << 20) - 700, 9 << 20])
            {
                byte[] d = new byte[rnd.Next(1, 70000)];
                rnd.NextBytes(d);
                int n = (int)Math.Min(d.Length, model.Length - at);
                d.AsSpan(0, n).CopyTo(model.AsSpan((int)at));
                await node.WriteAsync(at, d.AsMemory(0, n));
            }

            await node.WriteZeroesAsync(4096, 8192);
            model.AsSpan(4096, 8192).Clear();
            // Before the flush the L1 table on disk still names no L2 table: data goes first.
            var onDisk = QcowHeader.Read(mem.ToArray());
            byte[] l1 = mem.ToArray().AsSpan((int)onDisk.L1TableOffset, 8).ToArray();
            Assert.Equal(0UL, BinaryPrimitives.ReadUInt64BigEndian(l1));
            byte[] got = new byte[model.Length];
            await node.ReadAsync(0, got);
            Assert.True(model.AsSpan().SequenceEqual(got));
        }

        var again = await QcowNode.OpenAsync(Memory(mem.ToArray(), readOnly: true), NodeSettings.Default with { ReadOnly = true });
        await using (again)
        {
            byte[] got = new byte[model.Length];
            await again.ReadAsync(0, got);
            Assert.True(model.AsSpan().SequenceEqual(got));
        }
    }

    [Fact]
    public async Task Compressed_clusters_round_trip_and_overwrite()
    {
        var mem = Memory(NewImage(1 << 20));
        var node = await QcowNode.OpenAsync(mem, NodeSettings.Default);
        await using (node)
        {
            var c = (SharpBlock.Drivers.ICompressedWrites)node;
            byte[] cluster = new byte[4096];
            for (int i = 0; i < cluster.Length; i++)
                cluster[i] = (byte)(i % 7);
            byte[] packed = new byte[4096];
            int n = c.CompressCluster(cluster, packed);
            Assert.InRange(n, 1, 4095);
            await c.WriteCompressedAsync(8192, cluster, packed.AsMemory(0, n));
            byte[] got = new byte[4096];
            await node.ReadAsync(8192, got);
            Assert.Equal(cluster, got);
            // A partial write over a compressed cluster keeps the rest of it.
            await node.WriteAsync(8192 + 100, new byte[] { 0xee });
            cluster[100] = 0xee;
            await node.ReadAsync(8192, got);
            Assert.Equal(cluster, got);
        }
    }

    [Theory]
    [InlineData(4, 2u, 4, "qcow (v1) does not support qcow version 2")]
    [InlineData(QcowHeader.ClusterBitsOffset, 8u, 1, "Cluster size must be between 512 and 64k")]
    [InlineData(QcowHeader.L2BitsOffset, 14u, 1, "L2 table size must be between 512 and 64k")]
    [InlineData(QcowHeader.CryptMethodOffset, 9u, 4, "invalid encryption method in qcow header")]
    [InlineData(QcowHeader.L1TableOffsetOffset, 0x100000u, 8, "lies beyond the end of the file")]
    [InlineData(QcowHeader.SizeOffset, 0x7fffffffffffu, 8, "lies beyond the end of the file")]
    [InlineData(QcowHeader.BackingFileOffsetOffset, 48u, 8, "lies beyond the end of the file")]
    public async Task Hostile_headers_are_refused_naming_the_field(int at, ulong value, int width, string message)
    {
        byte[] img = NewImage(1 << 20);
        if (at == QcowHeader.BackingFileOffsetOffset)
            BinaryPrimitives.WriteUInt32BigEndian(img.AsSpan(QcowHeader.BackingFileSizeOffset), 1000);
        if (width == 1)
            img[at] = (byte)value;
        else if (width == 4)
            BinaryPrimitives.WriteUInt32BigEndian(img.AsSpan(at), (uint)value);
        else
            BinaryPrimitives.WriteUInt64BigEndian(img.AsSpan(at), value);
        var ex = await Assert.ThrowsAnyAsync<BlockException>(async () => await QcowNode.OpenAsync(Memory(img, true), NodeSettings.Default with { ReadOnly = true }));
        Assert.Contains(message, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_l2_table_past_the_end_of_the_file_is_corruption_not_a_crash()
    {
        byte[] img = NewImage(1 << 20);
        BinaryPrimitives.WriteUInt64BigEndian(img.AsSpan(48), 1L << 40);
        var node = await QcowNode.OpenAsync(Memory(img, true), NodeSettings.Default with { ReadOnly = true });
        await using (node)
        {
            var ex = await Assert.ThrowsAsync<ImageCorruptException>(async () => await node.ReadAsync(0, new byte[512]));
            Assert.Contains("L1 entry", ex.Message, StringComparison.Ordinal);
        }
    }
}
