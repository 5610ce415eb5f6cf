using System.Buffers.Binary;
using System.Text;
using SharpBlock.Drivers.Format.Bochs;
using SharpBlock.Drivers.Protocol.Memory;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Tests.Drivers.Vdi;

namespace SharpBlock.Tests.Drivers.Bochs;

/// <summary>Bochs redologs built by hand over the memory node: catalog and bitmaps decide what is data, and QEMU's refusals.</summary>
public class BochsNodeTests
{
    private const int Extent = 8192;

    /// <summary>
    /// A 64 KiB disk of 8 KiB extents: extent 2 is in slot 0 with sectors 0 and 3 written (0x11 and 0x33),
    /// extent 7 in slot 1 with its last sector written (0x77); everything else unallocated.
    /// </summary>
    internal static byte[] Image(uint version = BochsLayout.Version2)
    {
        const int catalog = 8, dataOffset = 512 + (catalog * 4), slot = 512 + Extent;
        byte[] img = new byte[dataOffset + (2 * slot)];
        Encoding.ASCII.GetBytes(BochsLayout.Magic).CopyTo(img, 0);
        Encoding.ASCII.GetBytes(BochsLayout.TypeRedolog).CopyTo(img, BochsHeader.TypeOffset);
        Encoding.ASCII.GetBytes(BochsLayout.SubtypeGrowing).CopyTo(img, BochsHeader.SubtypeOffset);
        var s = img.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(s[BochsHeader.VersionOffset..], version);
        BinaryPrimitives.WriteUInt32LittleEndian(s[BochsHeader.HeaderSizeOffset..], 512);
        BinaryPrimitives.WriteUInt32LittleEndian(s[BochsHeader.CatalogOffset..], catalog);
        BinaryPrimitives.WriteUInt32LittleEndian(s[BochsHeader.BitmapOffset..], 512);
        BinaryPrimitives.WriteUInt32LittleEndian(s[BochsHeader.ExtentOffset..], Extent);
        BinaryPrimitives.WriteUInt64LittleEndian(s[(version == BochsLayout.Version1 ? BochsHeader.DiskV1Offset : BochsHeader.DiskV2Offset)..], catalog * Extent);
        for (int i = 0; i < catalog; i++)
            BinaryPrimitives.WriteUInt32LittleEndian(s[(512 + (i * 4))..], i == 2 ? 0u : i == 7 ? 1u : BochsLayout.Unallocated);
        img[dataOffset] = 0b1001;
        s.Slice(dataOffset + 512, 512).Fill(0x11);
        s.Slice(dataOffset + 512 + (3 * 512), 512).Fill(0x33);
        // Sector 1 holds stale bytes whose bit is clear: they must read as zeros.
        s.Slice(dataOffset + 512 + 512, 512).Fill(0x99);
        img[dataOffset + slot + 1] = 0x80;
        s.Slice(dataOffset + slot + 512 + Extent - 512, 512).Fill(0x77);
        return img;
    }

    private static MemoryNode Memory(byte[] img) => new(img, NodeSettings.Default with { ReadOnly = true }, "test.bochs", img.Length);

    [Theory]
    [InlineData(BochsLayout.Version2)]
    [InlineData(BochsLayout.Version1)]
    public async Task Bitmaps_and_catalog_decide_what_reads_as_data(uint version)
    {
        byte[] img = Image(version);
        Assert.Equal(100, new BochsFormat().Probe(img, "x"));
        await using var node = await BochsNode.OpenAsync(Memory(img), NodeSettings.Default with { ReadOnly = true });
        Assert.Equal(8 * Extent, node.Length);
        byte[] want = new byte[8 * Extent];
        want.AsSpan((2 * Extent), 512).Fill(0x11);
        want.AsSpan((2 * Extent) + 1536, 512).Fill(0x33);
        want.AsSpan((8 * Extent) - 512, 512).Fill(0x77);
        byte[] got = new byte[want.Length];
        await node.ReadAsync(0, got);
        Assert.True(want.AsSpan().SequenceEqual(got));
        // An unaligned read across a set and a clear sector.
        byte[] part = new byte[700];
        await node.ReadAsync((2 * Extent) + 100, part);
        Assert.True(want.AsSpan((2 * Extent) + 100, 700).SequenceEqual(part));
    }

    [Fact]
    public async Task Writable_opens_and_writes_are_refused()
    {
        var ex = await Assert.ThrowsAsync<BlockException>(async () => await BochsNode.OpenAsync(Memory(Image()), NodeSettings.Default));
        Assert.Equal("Image is read-only", ex.Message);
    }

    [Theory]
    [InlineData(BochsHeader.TypeOffset, 0x44u, "Image not in Bochs format")]
    [InlineData(BochsHeader.CatalogOffset, 0x100001u, "Catalog size is too large")]
    [InlineData(BochsHeader.CatalogOffset, 4u, "Catalog size is too small for this disk size")]
    [InlineData(BochsHeader.CatalogOffset, 0x10000u, "Invalid image: the catalog (header 512, catalog 65536 entries) lies beyond the end of the file (17952 bytes)")]
    [InlineData(BochsHeader.ExtentOffset, 256u, "Extent size must be at least 512")]
    [InlineData(BochsHeader.ExtentOffset, 3000u, "Extent size 3000 is not a power of two")]
    [InlineData(BochsHeader.ExtentOffset, 0x1000000u, "Extent size 16777216 is too large")]
    [InlineData(BochsHeader.BitmapOffset, 0u, "Invalid image: the bitmap size is zero")]
    public async Task Hostile_headers_are_refused_naming_the_field(int at, uint value, string message)
    {
        byte[] img = Image();
        BinaryPrimitives.WriteUInt32LittleEndian(img.AsSpan(at), value);
        var ex = await Assert.ThrowsAsync<BlockException>(async () => await BochsNode.OpenAsync(Memory(img), NodeSettings.Default with { ReadOnly = true }));
        Assert.Equal(message, ex.Message);
    }

    [Fact]
    public async Task Mutated_images_never_crash_or_hang()
    {
        await FuzzCases.RunAsync("bochs", "BOCHS", Image(), [(0x40, 0x20), (512, 32), (544, 16)], async img =>
        {
            try
            {
                await (await BochsNode.OpenAsync(Memory(img), NodeSettings.Default with { ReadOnly = true })).DisposeAsync();
                return true;
            }
            catch (BlockException)
            {
                return false;
            }
        });
    }
}
