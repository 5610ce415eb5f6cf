using System.Buffers.Binary;
using System.IO.Compression;
using SharpBlock.Drivers.Format.Cloop;
using SharpBlock.Drivers.Protocol.Memory;
using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Tests.Drivers.Cloop;

/// <summary>cloop over the memory node: frozen layout, images from a generator read back, and QEMU's refusals.</summary>
public class CloopNodeTests
{
    internal static readonly NodeSettings ReadOnlySettings = NodeSettings.Default with { ReadOnly = true };

    /// <summary>A cloop V2 image of <paramref name="disk"/> (whole blocks), written from the format description.</summary>
    internal static byte[] Build(byte[] disk, int blockSize)
    {
        int n = disk.Length / blockSize;
        var blocks = new List<byte[]>();
        for (int i = 0; i < n; i++)
        {
            using var ms = new MemoryStream();
            using (var z = new ZLibStream(ms, CompressionLevel.Optimal))
                z.Write(disk, i * blockSize, blockSize);
            blocks.Add(ms.ToArray());
        }

        var img = new MemoryStream();
        byte[] head = new byte[CloopLayout.OffsetsOffset + ((n + 1) * 8)];
        CloopLayout.Magic.CopyTo(head);
        new CloopHeader((uint)blockSize, (uint)n).Write(head.AsSpan(CloopLayout.HeaderOffset));
        ulong at = (ulong)head.Length;
        for (int i = 0; i <= n; i++)
        {
            BinaryPrimitives.WriteUInt64BigEndian(head.AsSpan(CloopLayout.OffsetsOffset + (i * 8)), at);
            if (i < n)
                at += (ulong)blocks[i].Length;
        }

        img.Write(head);
        foreach (var b in blocks)
            img.Write(b);
        return img.ToArray();
    }

    internal static byte[] Disk(int length, int seed)
    {
        byte[] d = new byte[length];
        new Random(seed).NextBytes(d.AsSpan(0, length / 3));
        for (int i = length / 3; i < 2 * length / 3; i++)
            d[i] = (byte)"cloop text "[i % 11];
        return d;
    }

    internal static MemoryNode Memory(byte[] image) => new(image, ReadOnlySettings, "test.cloop", image.Length);

    [Fact]
    public void Layout_constants_are_frozen()
    {
        Assert.Equal(128, CloopLayout.BlockSizeOffset);
        Assert.Equal(132, CloopLayout.BlockCountOffset);
        Assert.Equal(136, CloopLayout.OffsetsOffset);
        Assert.Equal(64u << 20, CloopLayout.MaxBlockSize);
        Assert.Equal(536870911u, CloopLayout.MaxBlocks);
        Assert.Equal(2, new CloopFormat().Probe(Build(new byte[512], 512), "x"));
        Assert.Equal(0, new CloopFormat().Probe(CloopLayout.Magic.ToArray(), "x"));
    }

    [Theory]
    [InlineData(512)]
    [InlineData(65536)]
    public async Task Images_read_back_byte_for_byte(int blockSize)
    {
        byte[] disk = Disk(blockSize * 7, 5);
        var node = await CloopNode.OpenAsync(Memory(Build(disk, blockSize)), ReadOnlySettings);
        await using (node)
        {
            Assert.Equal(disk.Length, node.Length);
            byte[] got = new byte[disk.Length];
            await node.ReadAsync(0, got);
            Assert.Equal(disk, got);
            // Unaligned pieces across block boundaries, out of order.
            byte[] piece = new byte[blockSize + 3];
            await node.ReadAsync(blockSize * 5 - 1, piece);
            Assert.Equal(disk.AsSpan((blockSize * 5) - 1, piece.Length).ToArray(), piece);
            await node.ReadAsync(1, piece);
            Assert.Equal(disk.AsSpan(1, piece.Length).ToArray(), piece);
        }
    }

    [Fact]
    public async Task Writes_and_writable_opens_are_refused_as_in_qemu()
    {
        byte[] img = Build(new byte[4096], 4096);
        var rw = new MemoryNode(img, NodeSettings.Default, "test.cloop", img.Length);
        var e = await Assert.ThrowsAsync<BlockException>(async () => await CloopNode.OpenAsync(rw, NodeSettings.Default));
        Assert.Equal("Image is read-only", e.Message);
        var node = await CloopNode.OpenAsync(Memory(img), ReadOnlySettings);
        await using (node)
            await Assert.ThrowsAnyAsync<BlockException>(async () => await node.WriteAsync(0, new byte[512]));
    }

    private static async Task<string> RefusedAsync(byte[] img) =>
        (await Assert.ThrowsAnyAsync<BlockException>(async () => await CloopNode.OpenAsync(Memory(img), ReadOnlySettings))).Message;

    private static byte[] With(byte[] img, int at, uint value)
    {
        byte[] c = (byte[])img.Clone();
        BinaryPrimitives.WriteUInt32BigEndian(c.AsSpan(at), value);
        return c;
    }

    [Fact]
    public async Task Hostile_headers_are_refused_naming_the_field()
    {
        byte[] img = Build(Disk(4096 * 4, 1), 4096);
        Assert.Equal("block_size 1000 must be a multiple of 512", await RefusedAsync(With(img, 128, 1000)));
        Assert.Equal("block_size cannot be zero", await RefusedAsync(With(img, 128, 0)));
        Assert.Equal("block_size 134217728 must be 64 MB or less", await RefusedAsync(With(img, 128, 128u << 20)));
        Assert.Equal("n_blocks 4294967295 must be 536870911 or less", await RefusedAsync(With(img, 132, uint.MaxValue)));
        Assert.Equal("image requires too many offsets, try increasing block size", await RefusedAsync(With(img, 132, 536870911)));
        Assert.Contains("offset table", await RefusedAsync(With(img, 132, 1000)), StringComparison.Ordinal);

        byte[] down = (byte[])img.Clone();
        BinaryPrimitives.WriteUInt64BigEndian(down.AsSpan(136 + 16), 10);
        Assert.Equal("offsets not monotonically increasing at index 2, image file is corrupt", await RefusedAsync(down));
        byte[] huge = (byte[])img.Clone();
        BinaryPrimitives.WriteUInt64BigEndian(huge.AsSpan(136 + 8), 1UL << 40);
        Assert.Equal("invalid compressed block size at index 1, image file is corrupt", await RefusedAsync(huge));
        byte[] past = (byte[])img.Clone();
        BinaryPrimitives.WriteUInt64BigEndian(past.AsSpan(136 + 32), (ulong)img.Length + 1);
        Assert.Contains("beyond the end of the file", await RefusedAsync(past), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_damaged_block_fails_its_read_with_EIO()
    {
        byte[] img = Build(Disk(4096 * 4, 2), 4096);
        ulong second = BinaryPrimitives.ReadUInt64BigEndian(img.AsSpan(136 + 8));
        img[(int)second + 3] ^= 0xff;
        img[(int)second + 9] ^= 0x55;
        var node = await CloopNode.OpenAsync(Memory(img), ReadOnlySettings);
        await using (node)
        {
            await node.ReadAsync(0, new byte[4096]);
            var e = await Assert.ThrowsAsync<BlockException>(async () => await node.ReadAsync(4096, new byte[4096]));
            Assert.Equal(Errno.EIO, e.Errno);
        }
    }
}
