using System.Buffers.Binary;
using SharpBlock.Drivers;
using SharpBlock.Drivers.Format.Qcow2;
using SharpBlock.Errors;
using SharpBlock.Testing;

namespace SharpBlock.Tests.Drivers.Qcow2;

/// <summary>Every limit checked at open, each refused with the field named.</summary>
public class Qcow2HostileImageTests
{
    private static async Task<string> MakeAsync(TempDir dir, string name = "h.qcow2")
    {
        string p = dir.File(name);
        await Qcow2TestImage.CreateAsync(p, 4 << 20);
        await using (var img = await Qcow2TestImage.OpenAsync(p))
            await img.Node.WriteAsync(0, new byte[65536].Select(_ => (byte)0x5A).ToArray());
        return p;
    }

    private static void Poke32(string path, long offset, uint value)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        byte[] b = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, value);
        fs.Position = offset;
        fs.Write(b);
    }

    private static void Poke64(string path, long offset, ulong value)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        byte[] b = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(b, value);
        fs.Position = offset;
        fs.Write(b);
    }

    [Theory]
    [InlineData(Qcow2Header.ClusterBitsOffset, 8u, "cluster_bits")]
    [InlineData(Qcow2Header.ClusterBitsOffset, 22u, "cluster_bits")]
    [InlineData(Qcow2Header.L1SizeOffset, (32u << 20) / 8 + 1, "l1_size")]
    [InlineData(Qcow2Header.L1SizeOffset, 0u, "l1_size")]
    [InlineData(Qcow2Header.RefcountTableClustersOffset, (8u << 20) / 65536 + 1, "refcount_table_clusters")]
    [InlineData(Qcow2Header.NbSnapshotsOffset, 65537u, "nb_snapshots")]
    [InlineData(Qcow2Header.HeaderLengthOffset, 65537u, "header_length")]
    [InlineData(Qcow2Header.HeaderLengthOffset, 100u, "header_length")]
    [InlineData(Qcow2Header.RefcountOrderOffset, 7u, "refcount_order")]
    [InlineData(Qcow2Header.BackingFileSizeOffset, 1024u, "backing_file_size")]
    public async Task Hostile_header_values_are_refused_naming_the_field(int offset, uint value, string field)
    {
        using var dir = new TempDir();
        string p = await MakeAsync(dir);
        if (field == "backing_file_size")
            Poke64(p, Qcow2Header.BackingFileOffsetOffset, 512);
        Poke32(p, offset, value);
        var ex = await Assert.ThrowsAnyAsync<BlockException>(() => Qcow2TestImage.OpenAsync(p, readOnly: true));
        var corrupt = Assert.IsType<ImageCorruptException>(ex);
        Assert.Equal(field, corrupt.Field);
        Assert.Contains(field, ex.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// A table past the end of the file (a cut image) reads as zeros, as QEMU reads it: the image opens and
    /// what the table would have mapped reads as unallocated; writes meet the overlap checks instead.
    /// </summary>
    [Theory]
    [InlineData(Qcow2Header.L1TableOffsetOffset, 1UL << 40)]
    [InlineData(Qcow2Header.RefcountTableOffsetOffset, 1UL << 40)]
    [InlineData(Qcow2Header.RefcountTableClustersOffset, 100UL)]
    public async Task Tables_past_the_end_of_the_file_read_as_zeros_as_qemu_reads_them(int offset, ulong value)
    {
        using var dir = new TempDir();
        string p = await MakeAsync(dir);
        if (offset == Qcow2Header.RefcountTableClustersOffset)
            Poke32(p, offset, (uint)value);
        else
            Poke64(p, offset, value);
        await using var img = await Qcow2TestImage.OpenAsync(p, readOnly: true);
        byte[] b = new byte[4096];
        await img.Node.ReadAsync(1 << 20, b);
        Assert.True(Array.TrueForAll(b, x => x == 0));
    }

    [Theory]
    [InlineData(Qcow2Header.L1TableOffsetOffset, 0x30001UL, "l1_table_offset")]
    [InlineData(Qcow2Header.RefcountTableOffsetOffset, 0x10200UL, "refcount_table_offset")]
    [InlineData(Qcow2Header.SnapshotsOffsetOffset, 0x123UL, "snapshots_offset")]
    public async Task Unaligned_offsets_are_refused(int offset, ulong value, string field)
    {
        using var dir = new TempDir();
        string p = await MakeAsync(dir);
        if (field == "snapshots_offset")
            Poke32(p, Qcow2Header.NbSnapshotsOffset, 1);
        Poke64(p, offset, value);
        var ex = await Assert.ThrowsAsync<ImageCorruptException>(() => Qcow2TestImage.OpenAsync(p, readOnly: true));
        Assert.Equal(field, ex.Field);
    }

    [Fact]
    public async Task Unknown_incompatible_features_are_refused_by_name()
    {
        using var dir = new TempDir();
        string p = await MakeAsync(dir);
        Poke64(p, Qcow2Header.IncompatibleFeaturesOffset, (1UL << 4) | (1UL << 20));
        var ex = await Assert.ThrowsAnyAsync<BlockException>(() => Qcow2TestImage.OpenAsync(p, readOnly: true));
        Assert.Contains("Unsupported qcow2 feature(s): extended L2 entries, Unknown incompatible feature: 100000", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unknown_autoclear_bits_are_cleared_on_read_write_open()
    {
        using var dir = new TempDir();
        string p = await MakeAsync(dir);
        Poke64(p, Qcow2Header.AutoclearFeaturesOffset, 0x8001);
        await using (var ro = await Qcow2TestImage.OpenAsync(p, readOnly: true))
        {
        }

        Assert.Equal(0x8001UL, ReadHeader(p).AutoclearFeatures);
        await using (var rw = await Qcow2TestImage.OpenAsync(p))
        {
        }

        Assert.Equal(0UL, ReadHeader(p).AutoclearFeatures);
    }

    [Fact]
    public async Task Corrupt_bit_refuses_read_write_but_allows_read_only()
    {
        using var dir = new TempDir();
        string p = await MakeAsync(dir);
        Poke64(p, Qcow2Header.IncompatibleFeaturesOffset, Qcow2Layout.IncompatCorrupt);
        var ex = await Assert.ThrowsAnyAsync<BlockException>(() => Qcow2TestImage.OpenAsync(p));
        Assert.Contains("corrupt", ex.Message, StringComparison.Ordinal);
        await using var ro = await Qcow2TestImage.OpenAsync(p, readOnly: true);
        byte[] b = new byte[16];
        await ro.Node.ReadAsync(0, b);
        Assert.All(b, x => Assert.Equal(0x5A, x));
    }

    [Fact]
    public async Task L1_entry_with_reserved_bits_is_read_past_and_reported_by_check()
    {
        // QEMU uses such an entry for its offset and only its check complains; refusing the open would lock
        // a user out of data QEMU reads.
        using var dir = new TempDir();
        string p = await MakeAsync(dir);
        var h = ReadHeader(p);
        byte[] l1 = new byte[8];
        using (var fs = File.OpenRead(p))
        {
            fs.Position = (long)h.L1TableOffset;
            fs.ReadExactly(l1);
        }

        ulong entry = BinaryPrimitives.ReadUInt64BigEndian(l1) | 1;
        Poke64(p, (long)h.L1TableOffset, entry);
        await using var img = await Qcow2TestImage.OpenAsync(p, readOnly: true);
        byte[] b = new byte[512];
        await img.Node.ReadAsync(0, b);
        Assert.True(Array.TrueForAll(b, x => x == 0x5A));
        var lines = new List<string>();
        var r = await img.Qcow2.CheckAsync(ImageCheckMode.None, lines.Add);
        Assert.True(r.Corruptions > 0);
        Assert.Contains($"ERROR found L1 entry with reserved bits set: {entry:x}", lines);
    }

    [Fact]
    public async Task Misaligned_L2_entry_fails_the_read_with_a_corruption_error()
    {
        using var dir = new TempDir();
        string p = await MakeAsync(dir);
        var h = ReadHeader(p);
        byte[] l1 = new byte[8];
        using (var fs = File.OpenRead(p))
        {
            fs.Position = (long)h.L1TableOffset;
            fs.ReadExactly(l1);
        }

        long l2 = (long)(BinaryPrimitives.ReadUInt64BigEndian(l1) & Qcow2Layout.OffsetMask);
        Poke64(p, l2, Qcow2Layout.OflagCopied | 0x50200);
        await using var img = await Qcow2TestImage.OpenAsync(p, readOnly: true);
        var ex = await Assert.ThrowsAsync<BlockException>(async () => await img.Node.ReadAsync(0, new byte[512]));
        Assert.Equal(Errno.EIO, ex.Errno);
        Assert.Contains("Cluster allocation offset 0x50200 unaligned", ex.Message, StringComparison.Ordinal);
    }

    internal static Qcow2Header ReadHeader(string p)
    {
        byte[] b = new byte[112];
        using var fs = File.OpenRead(p);
        fs.ReadExactly(b);
        return Qcow2Header.Read(b);
    }
}

public class Qcow2CorruptBitTests
{
    [Fact]
    public async Task Data_write_onto_metadata_fails_and_marks_the_image_corrupt()
    {
        using var dir = new TempDir();
        string p = dir.File("m.qcow2");
        await Qcow2TestImage.CreateAsync(p, 4 << 20);
        await using (var img = await Qcow2TestImage.OpenAsync(p))
            await img.Node.WriteAsync(0, new byte[] { 1 });
        var h = Qcow2HostileImageTests.ReadHeader(p);
        byte[] l1 = new byte[8];
        using (var fs = new FileStream(p, FileMode.Open, FileAccess.ReadWrite))
        {
            fs.Position = (long)h.L1TableOffset;
            fs.ReadExactly(l1);
            long l2 = (long)(BinaryPrimitives.ReadUInt64BigEndian(l1) & Qcow2Layout.OffsetMask);
            byte[] e = new byte[8];
            // Guest cluster 1 claims to live in the refcount table.
            BinaryPrimitives.WriteUInt64BigEndian(e, Qcow2Layout.OflagCopied | h.RefcountTableOffset);
            fs.Position = l2 + 8;
            fs.Write(e);
        }

        await using (var img = await Qcow2TestImage.OpenAsync(p))
        {
            var ex = await Assert.ThrowsAnyAsync<BlockException>(async () => await img.Node.WriteAsync(65536, new byte[512]));
            Assert.Equal(Errno.EIO, ex.Errno);
            Assert.True(img.Qcow2.IsCorrupt);
        }

        Assert.NotEqual(0UL, Qcow2HostileImageTests.ReadHeader(p).IncompatibleFeatures & Qcow2Layout.IncompatCorrupt);
        await Assert.ThrowsAnyAsync<BlockException>(() => Qcow2TestImage.OpenAsync(p));
    }
}
