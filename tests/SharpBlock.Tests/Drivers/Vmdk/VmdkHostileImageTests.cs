using System.Buffers.Binary;
using System.Text;
using SharpBlock.Drivers.Format.Vmdk;
using SharpBlock.Drivers.Protocol.Memory;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Testing;

namespace SharpBlock.Tests.Drivers.Vmdk;

/// <summary>Damaged and hostile images: each bad value refused before use with an error that names it, never a crash or a huge allocation.</summary>
public class VmdkHostileImageTests
{
    private static async Task<byte[]> ImageAsync()
    {
        using var dir = new TempDir();
        string p = dir.File("a.vmdk");
        await VmdkCreator.CreateAsync(p, new VmdkCreateOptions { Size = 4 << 20 });
        return await File.ReadAllBytesAsync(p);
    }

    private static async Task<BlockException> RefusedAsync(byte[] image, bool readOnly = true)
    {
        await using var file = new MemoryNode(image, NodeSettings.Default with { ReadOnly = readOnly }, "bad.vmdk");
        return await Assert.ThrowsAnyAsync<BlockException>(async () => await (await VmdkNode.OpenAsync(file, NodeSettings.Default with { ReadOnly = readOnly })).DisposeAsync());
    }

    [Theory]
    [InlineData(VmdkSparseHeader.GranularityOffset, 3ul, "granularity", "not a power of two")]
    [InlineData(VmdkSparseHeader.GranularityOffset, 0x400000ul, "granularity", "Invalid granularity, image may be corrupt")]
    [InlineData(VmdkSparseHeader.GranularityOffset, 0ul, "granularity", "L2 table size too small")]
    [InlineData(VmdkSparseHeader.CapacityOffset, 0x7fffffffffffffful, "capacity", "image size too large")]
    [InlineData(VmdkSparseHeader.CapacityOffset, 1ul << 50, "capacity", "L1 size too big")]
    [InlineData(VmdkSparseHeader.GdOffsetOffset, 1ul << 40, "gd_offset", "lies outside the file")]
    [InlineData(VmdkSparseHeader.RgdOffsetOffset, 100000ul, "rgd_offset", "lies outside the file")]
    [InlineData(VmdkSparseHeader.GrainOffsetOffset, 1ul << 30, "grain_offset", "File truncated, expecting at least")]
    public async Task Header_fields_out_of_bounds_are_refused_by_name(int offset, ulong value, string field, string words)
    {
        byte[] img = await ImageAsync();
        BinaryPrimitives.WriteUInt64LittleEndian(img.AsSpan(offset), value);
        var ex = await RefusedAsync(img);
        var corrupt = Assert.IsType<ImageCorruptException>(ex);
        Assert.Equal(field, corrupt.Field);
        Assert.Contains(words, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Versions_and_table_sizes_qemu_refuses_are_refused_in_its_words()
    {
        byte[] img = await ImageAsync();
        BinaryPrimitives.WriteUInt32LittleEndian(img.AsSpan(VmdkSparseHeader.VersionOffset), 4);
        Assert.Equal("Unsupported VMDK version 4", (await RefusedAsync(img)).Message);
        BinaryPrimitives.WriteUInt32LittleEndian(img.AsSpan(VmdkSparseHeader.VersionOffset), 3);
        Assert.Equal("VMDK version 3 must be read only", (await RefusedAsync(img, readOnly: false)).Message);
        BinaryPrimitives.WriteUInt32LittleEndian(img.AsSpan(VmdkSparseHeader.VersionOffset), 1);
        BinaryPrimitives.WriteUInt32LittleEndian(img.AsSpan(VmdkSparseHeader.GtesPerGtOffset), 513);
        Assert.Contains("L2 table size too big", (await RefusedAsync(img)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_grain_table_outside_the_file_fails_the_read_not_the_process()
    {
        byte[] img = await ImageAsync();
        var h = VmdkSparseHeader.Read(img);
        BinaryPrimitives.WriteUInt32LittleEndian(img.AsSpan((int)h.GdOffset * 512), 0x7fffffff);
        await using var file = new MemoryNode(img, NodeSettings.Default with { ReadOnly = true }, "bad.vmdk");
        await using var node = await VmdkNode.OpenAsync(file, NodeSettings.Default with { ReadOnly = true });
        var ex = await Assert.ThrowsAsync<ImageCorruptException>(async () => await node.ReadAsync(0, new byte[512]));
        Assert.Equal("grain directory entry 0", ex.Field);
    }

    [Fact]
    public async Task A_stream_footer_that_is_not_one_is_refused()
    {
        byte[] img = VmdkTestImage.VmwareStream(256, new Dictionary<int, byte[]> { [0] = new byte[65536] });
        img[^1024] = 9;
        Assert.Contains("Invalid footer", (await RefusedAsync(img)).Message, StringComparison.Ordinal);
        Assert.Contains("Invalid footer", (await RefusedAsync(img[..600])).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("version=1\ngarbage\n", "invalid VMDK image descriptor")]
    [InlineData("version=1\ncreateType=\"foo\"\n", "Unsupported image type 'foo'")]
    [InlineData("version=1\ncreateType=\"monolithicFlat\"\nRDONLY 8 FLAT \"x\" 0\n", "no RW extent")]
    [InlineData("version=1\ncreateType=\"monolithicFlat\"\nRW 8 FLAT \"x\"\n", "Invalid extent line: RW 8 FLAT \"x\"")]
    public async Task Descriptor_garbage_is_refused(string text, string words) =>
        Assert.Contains(words, (await RefusedAsync(Encoding.ASCII.GetBytes(text))).Message, StringComparison.Ordinal);

    [Fact]
    public async Task A_sparse_image_of_size_zero_is_refused_as_qemu_does()
    {
        using var dir = new TempDir();
        string p = dir.File("z.vmdk");
        await VmdkCreator.CreateAsync(p, new VmdkCreateOptions { Size = 0 });
        Assert.Equal("Unsupported image type 'monolithicSparse'", (await RefusedAsync(await File.ReadAllBytesAsync(p))).Message);
    }

    [Fact]
    public async Task A_descriptor_size_that_overlaps_the_tables_does_not_let_a_CID_update_overwrite_them()
    {
        byte[] img = await ImageAsync();
        BinaryPrimitives.WriteUInt64LittleEndian(img.AsSpan(VmdkSparseHeader.DescSizeOffset), 2000);
        byte[] data = new byte[4096];
        Array.Fill(data, (byte)9);
        await using var file = new MemoryNode(img, NodeSettings.Default, "lying.vmdk");
        await using (var node = await VmdkNode.OpenAsync(file, NodeSettings.Default))
            await node.WriteAsync(70000, data);
        await using var again = new MemoryNode(file.ToArray(), NodeSettings.Default with { ReadOnly = true }, "lying.vmdk");
        await using var reopened = await VmdkNode.OpenAsync(again, NodeSettings.Default with { ReadOnly = true });
        byte[] got = new byte[4096];
        await reopened.ReadAsync(70000, got);
        Assert.Equal(data, got);
        var check = await ((SharpBlock.Drivers.ICheckableImage)reopened).CheckAsync(SharpBlock.Drivers.ImageCheckMode.None, null);
        Assert.Equal(0, check.Corruptions);
    }
}
