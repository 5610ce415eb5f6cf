using System.Buffers.Binary;
using SharpBlock.Drivers.Format.Cow;
using SharpBlock.Drivers.Protocol.Memory;
using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Tests.Drivers.Cow;

/// <summary>cow (UML COW v2) over the memory node, from images a generator builds from the layout description (QEMU 7.2 has no cow to compare with).</summary>
public class CowNodeTests
{
    /// <summary>
    /// Builds a COW v2 image byte by byte from the layout: 1048-byte big-endian header, bitmap right after it
    /// (bit i of byte i/8, LSB first), data area at the next 512-byte boundary with sector i at 512 * i.
    /// </summary>
    internal static byte[] Generate(long size, IReadOnlyDictionary<long, byte> sectors, string backing = "", uint magic = 0x4f4f4f4d, uint version = 2, int sectorSize = 512)
    {
        long nsec = size / 512;
        long bitmap = (nsec + 7) / 8;
        long data = (1048 + bitmap + 511) / 512 * 512;
        long last = sectors.Count == 0 ? -1 : sectors.Keys.Max();
        byte[] img = new byte[last < 0 ? 1048 + bitmap : Math.Max(1048 + bitmap, data + ((last + 1) * 512))];
        BinaryPrimitives.WriteUInt32BigEndian(img, magic);
        BinaryPrimitives.WriteUInt32BigEndian(img.AsSpan(4), version);
        System.Text.Encoding.ASCII.GetBytes(backing, img.AsSpan(8));
        BinaryPrimitives.WriteInt32BigEndian(img.AsSpan(1032), 12345);
        BinaryPrimitives.WriteUInt64BigEndian(img.AsSpan(1036), (ulong)size);
        BinaryPrimitives.WriteInt32BigEndian(img.AsSpan(1044), sectorSize);
        foreach (var (s, fill) in sectors)
        {
            img[1048 + (s / 8)] |= (byte)(1 << (int)(s % 8));
            img.AsSpan((int)(data + (s * 512)), 512).Fill(fill);
        }

        return img;
    }

    internal static MemoryNode Memory(byte[] image, bool readOnly = false) =>
        new(image, NodeSettings.Default with { ReadOnly = readOnly }, "test.cow", image.Length + (32L << 20));

    [Fact]
    public void Layout_constants_are_frozen()
    {
        Assert.Equal(1048, CowHeader.Size);
        Assert.Equal(0x408, CowHeader.MtimeOffset);
        Assert.Equal(0x40c, CowHeader.DiskSizeOffset);
        Assert.Equal(0x414, CowHeader.SectorSizeOffset);
        Assert.Equal(1536, CowLayout.DataOffset(1 << 20));
        // The creator writes what the generator writes, bar the mtime.
        byte[] ours = CowCreator.Build(1 << 20, "base.img", 12345);
        byte[] gen = Generate(1 << 20, new Dictionary<long, byte>(), "base.img");
        Assert.Equal(gen, ours);
    }

    [Fact]
    public async Task Generated_images_read_sector_by_sector()
    {
        var sectors = new Dictionary<long, byte> { [0] = 0x11, [1] = 0x22, [9] = 0x99, [2047] = 0x7f };
        var node = await CowNode.OpenAsync(Memory(Generate(1 << 20, sectors), true), NodeSettings.Default with { ReadOnly = true });
        await using (node)
        {
            Assert.Equal(1 << 20, node.Length);
            byte[] got = new byte[1 << 20];
            await node.ReadAsync(0, got);
            for (long s = 0; s < 2048; s++)
            {
                byte want = sectors.TryGetValue(s, out byte b) ? b : (byte)0;
                Assert.True(got.AsSpan((int)(s * 512), 512).IndexOfAnyExcept(want) < 0, $"sector {s}");
            }

            var st = await node.GetBlockStatusAsync(0, 1 << 20);
            Assert.True(st.IsData);
            Assert.Equal(1024, st.Length);
        }
    }

    [Fact]
    public async Task Writes_read_back_and_reach_the_bitmap_only_at_flush()
    {
        var mem = Memory(CowCreator.Build(4 << 20, null, 0));
        byte[] model = new byte[4 << 20];
        var rnd = new Random(3);
        var node = await CowNode.OpenAsync(mem, NodeSettings.Default);
        await using (node)
        {
            foreach (long at in (long[])[0, 77, 4095, (4 << 20) - 300, 2 << 20])
            {
                byte[] d = new byte[rnd.Next(1, 20000)];
                rnd.NextBytes(d);
                int n = (int)Math.Min(d.Length, model.Length - at);
                d.AsSpan(0, n).CopyTo(model.AsSpan((int)at));
                await node.WriteAsync(at, d.AsMemory(0, n));
            }

            Assert.Equal(0, mem.ToArray()[CowHeader.Size]);
            byte[] got = new byte[model.Length];
            await node.ReadAsync(0, got);
            Assert.True(model.AsSpan().SequenceEqual(got));
        }

        Assert.NotEqual(0, mem.ToArray()[CowHeader.Size]);
        var again = await CowNode.OpenAsync(Memory(mem.ToArray(), true), NodeSettings.Default with { ReadOnly = true });
        await using (again)
        {
            byte[] got = new byte[model.Length];
            await again.ReadAsync(0, got);
            Assert.True(model.AsSpan().SequenceEqual(got));
        }
    }

    [Theory]
    [InlineData(0x12345678u, 2u, 512, 1L << 20, "Image not in cow format")]
    [InlineData(0x4f4f4f4du, 3u, 512, 1L << 20, "COW version 3")]
    [InlineData(0x4f4f4f4du, 2u, 4096, 1L << 20, "sectorsize 4096")]
    [InlineData(0x4f4f4f4du, 2u, 512, 1L << 50, "larger than the supported")]
    public async Task Hostile_headers_are_refused_naming_the_field(uint magic, uint version, int sectorSize, long size, string message)
    {
        byte[] img = Generate(1 << 20, new Dictionary<long, byte>(), "", magic, version, sectorSize);
        BinaryPrimitives.WriteUInt64BigEndian(img.AsSpan(CowHeader.DiskSizeOffset), (ulong)size);
        var ex = await Assert.ThrowsAnyAsync<BlockException>(async () => await CowNode.OpenAsync(Memory(img, true), NodeSettings.Default with { ReadOnly = true }));
        Assert.Contains(message, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_bitmap_larger_than_the_file_is_refused()
    {
        byte[] img = Generate(1 << 20, new Dictionary<long, byte>());
        BinaryPrimitives.WriteUInt64BigEndian(img.AsSpan(CowHeader.DiskSizeOffset), 1UL << 39);
        var ex = await Assert.ThrowsAsync<BlockException>(async () => await CowNode.OpenAsync(Memory(img, true), NodeSettings.Default with { ReadOnly = true }));
        Assert.Contains("bitmap", ex.Message, StringComparison.Ordinal);
    }
}
