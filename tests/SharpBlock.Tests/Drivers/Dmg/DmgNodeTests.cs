using System.Buffers.Binary;
using SharpBlock.Drivers.Format.Dmg;
using SharpBlock.Drivers.Protocol.Memory;
using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Tests.Drivers.Dmg;

/// <summary>dmg over the memory node: images from the generator (every chunk type, plist and resource fork) read back, and refusals.</summary>
public class DmgNodeTests
{
    internal static readonly NodeSettings ReadOnlySettings = NodeSettings.Default with { ReadOnly = true };

    internal static readonly (uint, int)[] EveryType =
    [
        (DmgImageBuilder.Zlib, 40), (DmgImageBuilder.Raw, 9), (DmgImageBuilder.Zero, 100), (DmgImageBuilder.Bzip2, 33),
        (DmgImageBuilder.Ignore, 7), (DmgImageBuilder.Zlib, 2048), (DmgImageBuilder.Raw, 1), (DmgImageBuilder.Bzip2, 300),
    ];

    internal static byte[] Disk(int sectors, int seed)
    {
        byte[] d = new byte[sectors * 512];
        var rnd = new Random(seed);
        rnd.NextBytes(d);
        for (int i = 0; i < d.Length; i += 1000)
            d.AsSpan(i, Math.Min(300, d.Length - i)).Fill((byte)'t');
        return d;
    }

    internal static MemoryNode Memory(byte[] image) => new(image, ReadOnlySettings, "test.dmg", image.Length);

    [Fact]
    public void Layout_constants_are_frozen()
    {
        Assert.Equal(0x28, DmgKoly.RsrcForkOffsetOffset);
        Assert.Equal(0x30, DmgKoly.RsrcForkLengthOffset);
        Assert.Equal(0xd8, DmgKoly.XmlOffsetOffset);
        Assert.Equal(0xe0, DmgKoly.XmlLengthOffset);
        Assert.Equal(0x1ec, DmgKoly.SectorCountOffset);
        Assert.Equal(204, DmgMish.Size);
        Assert.Equal(40, DmgChunkEntry.Size);
        Assert.Equal(2, new DmgFormat().Probe([], "a.dmg"));
        Assert.Equal(0, new DmgFormat().Probe([], "a.img"));
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public async Task Every_chunk_type_reads_back_byte_for_byte(bool resourceFork, bool relativeData)
    {
        byte[] disk = Disk(2538, 4);
        var node = await DmgNode.OpenAsync(Memory(DmgImageBuilder.Build(disk, EveryType, resourceFork, relativeData)), ReadOnlySettings);
        await using (node)
        {
            byte[] want = DmgImageBuilder.Expected(disk, EveryType);
            Assert.Equal(want.Length, node.Length);
            byte[] got = new byte[want.Length];
            await node.ReadAsync(0, got);
            Assert.Equal(want, got);
            byte[] piece = new byte[70000];
            await node.ReadAsync(20000, piece);
            Assert.Equal(want.AsSpan(20000, piece.Length).ToArray(), piece);
        }
    }

    [Fact]
    public async Task Writes_and_writable_opens_are_refused_as_in_qemu()
    {
        byte[] img = DmgImageBuilder.Build(Disk(16, 1), [(DmgImageBuilder.Raw, 8), (DmgImageBuilder.Zlib, 8)], false);
        var rw = new MemoryNode(img, NodeSettings.Default, "test.dmg", img.Length);
        Assert.Equal("Image is read-only", (await Assert.ThrowsAsync<BlockException>(async () => await DmgNode.OpenAsync(rw, NodeSettings.Default))).Message);
        var node = await DmgNode.OpenAsync(Memory(img), ReadOnlySettings);
        await using (node)
            await Assert.ThrowsAnyAsync<BlockException>(async () => await node.WriteAsync(0, new byte[512]));
    }

    private static async Task<string> RefusedAsync(byte[] img) =>
        (await Assert.ThrowsAnyAsync<BlockException>(async () => await DmgNode.OpenAsync(Memory(img), ReadOnlySettings))).Message;

    /// <summary>The first chunk entry of the first mish table in a resource-fork image.</summary>
    private static int FirstEntry(byte[] img)
    {
        long fork = (long)BinaryPrimitives.ReadUInt64BigEndian(img.AsSpan(img.Length - 512 + 0x28));
        return (int)fork + 0x100 + 4 + 204;
    }

    [Fact]
    public async Task Hostile_images_are_refused_naming_the_field()
    {
        byte[] img = DmgImageBuilder.Build(Disk(64, 2), [(DmgImageBuilder.Zlib, 32), (DmgImageBuilder.Raw, 32)], true);
        Assert.Equal("dmg file must be at least 512 bytes long", await RefusedAsync(new byte[100]));
        Assert.Equal("Could not locate UDIF trailer in dmg file", await RefusedAsync(new byte[4096]));

        byte[] c = (byte[])img.Clone();
        BinaryPrimitives.WriteUInt64BigEndian(c.AsSpan(c.Length - 512 + 0x30), 1UL << 40);
        Assert.Contains("rsrc_fork_length", await RefusedAsync(c), StringComparison.Ordinal);
        c = (byte[])img.Clone();
        BinaryPrimitives.WriteUInt64BigEndian(c.AsSpan(c.Length - 512 + 0x1ec), ulong.MaxValue);
        Assert.Contains("sector_count", await RefusedAsync(c), StringComparison.Ordinal);
        c = (byte[])img.Clone();
        BinaryPrimitives.WriteUInt64BigEndian(c.AsSpan(FirstEntry(c) + 16), 1UL << 30);
        Assert.Equal("dmg: sector count 1073741824 for chunk 0 is larger than max (131072)", await RefusedAsync(c));
        c = (byte[])img.Clone();
        BinaryPrimitives.WriteUInt64BigEndian(c.AsSpan(FirstEntry(c) + 32), 1UL << 27);
        Assert.Equal("dmg: length 134217728 for chunk 0 is larger than max (67108864)", await RefusedAsync(c));
        c = (byte[])img.Clone();
        BinaryPrimitives.WriteUInt64BigEndian(c.AsSpan(FirstEntry(c) + 24), 1UL << 20);
        Assert.Contains("lies beyond the end of the file", await RefusedAsync(c), StringComparison.Ordinal);
        c = (byte[])img.Clone();
        BinaryPrimitives.WriteUInt32BigEndian(c.AsSpan(FirstEntry(c) - 204 - 4), 1 << 30);
        Assert.Contains("does not fit in the resource fork", await RefusedAsync(c), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_damaged_chunk_fails_its_read_with_EIO_and_a_hole_too()
    {
        byte[] disk = Disk(64, 3);
        byte[] img = DmgImageBuilder.Build(disk, [(DmgImageBuilder.Zlib, 32), (DmgImageBuilder.Raw, 32)], false);
        img[10] ^= 0xff;
        img[20] ^= 0x5a;
        var node = await DmgNode.OpenAsync(Memory(img), ReadOnlySettings);
        await using (node)
        {
            Assert.Equal(Errno.EIO, (await Assert.ThrowsAsync<BlockException>(async () => await node.ReadAsync(0, new byte[512]))).Errno);
            byte[] tail = new byte[512];
            await node.ReadAsync(40 * 512, tail);
            Assert.Equal(disk.AsSpan(40 * 512, 512).ToArray(), tail);
        }

        // A sector no chunk holds: EIO, as QEMU.
        byte[] shorter = DmgImageBuilder.Build(disk, [(DmgImageBuilder.Raw, 32)], false);
        BinaryPrimitives.WriteUInt64BigEndian(shorter.AsSpan(shorter.Length - 512 + 0x1ec), 64);
        var holed = await DmgNode.OpenAsync(Memory(shorter), ReadOnlySettings);
        await using (holed)
            Assert.Equal(Errno.EIO, (await Assert.ThrowsAsync<BlockException>(async () => await holed.ReadAsync(40 * 512, new byte[512]))).Errno);
    }

    /// <summary>Found by the fuzz test (DMG_FUZZ_SEED=503085270): a zero chunk of 2^56 sectors made the byte count overflow and the read loop spin.</summary>
    [Fact]
    public async Task A_zero_chunk_of_huge_sector_count_reads_zeros()
    {
        byte[] img = DmgImageBuilder.Build(Disk(64, 6), [(DmgImageBuilder.Raw, 32), (DmgImageBuilder.Zero, 32)], true);
        BinaryPrimitives.WriteUInt64BigEndian(img.AsSpan(FirstEntry(img) + 40 + 16), 1UL << 56);
        var node = await DmgNode.OpenAsync(Memory(img), ReadOnlySettings);
        await using (node)
        {
            byte[] got = new byte[64 << 10];
            got.AsSpan().Fill(1);
            await node.ReadAsync(0, got.AsMemory(0, 32 * 512));
            await node.ReadAsync(32 * 512, got.AsMemory(0, 32 * 512));
            Assert.True(got.AsSpan(0, 32 * 512).IndexOfAnyExcept((byte)0) < 0);
        }
    }
}
