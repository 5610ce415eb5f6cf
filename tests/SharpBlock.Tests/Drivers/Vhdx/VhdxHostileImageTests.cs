using System.Buffers.Binary;
using SharpBlock.Drivers.Format.Vhdx;
using SharpBlock.Errors;

namespace SharpBlock.Tests.Drivers.Vhdx;

/// <summary>Damaged and hostile images: refused at open with the field named, or failing the one request; never a crash or a huge allocation.</summary>
public class VhdxHostileImageTests
{
    private const int Block = 1 << 20;
    private const int Rt = (int)VhdxLayout.RegionTable1Offset;
    private const int H1 = (int)VhdxLayout.Header1Offset;
    private const int H2 = (int)VhdxLayout.Header2Offset;

    private static Task<byte[]> ImageAsync() => VhdxTestImage.CreateAsync(8 << 20, Block);

    private static async Task<Exception> RefusedAsync(byte[] image, bool readOnly = true)
    {
        var ex = await Assert.ThrowsAnyAsync<BlockException>(async () =>
        {
            await using var n = await VhdxTestImage.OpenAsync(VhdxTestImage.File(image, readOnly), readOnly);
        });
        return ex;
    }

    private static void ResealHeader(byte[] image, int at) => VhdxLayout.Seal(image.AsSpan(at, VhdxHeader.Size), VhdxHeader.ChecksumOffset);

    private static void ResealRegions(byte[] image) => VhdxLayout.Seal(image.AsSpan(Rt, VhdxRegionTable.Size), VhdxRegionTable.ChecksumOffset);

    private static long RegionOffset(byte[] image, int entry) => BinaryPrimitives.ReadInt64LittleEndian(image.AsSpan(Rt + VhdxRegionTable.EntriesOffset + (entry * VhdxRegionEntry.Size) + VhdxRegionEntry.FileOffsetOffset));

    [Fact]
    public async Task Both_headers_with_bad_checksums_are_no_valid_header()
    {
        byte[] img = await ImageAsync();
        img[H1 + 20] ^= 1;
        img[H2 + 20] ^= 1;
        Assert.Contains("No valid VHDX header found", (await RefusedAsync(img)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task One_bad_header_leaves_the_other_in_use()
    {
        byte[] img = await ImageAsync();
        img[H2 + 20] ^= 1;
        await using var n = await VhdxTestImage.OpenAsync(VhdxTestImage.File(img, true), true);
        Assert.Equal(BinaryPrimitives.ReadUInt64LittleEndian(img.AsSpan(H1 + 8)), n.CurrentHeader.SequenceNumber);
    }

    [Fact]
    public async Task Equal_sequence_numbers_on_different_headers_are_refused()
    {
        byte[] img = await ImageAsync();
        BinaryPrimitives.WriteUInt64LittleEndian(img.AsSpan(H2 + 8), BinaryPrimitives.ReadUInt64LittleEndian(img.AsSpan(H1 + 8)));
        Guid.NewGuid().TryWriteBytes(img.AsSpan(H2 + 16, 16));
        ResealHeader(img, H2);
        Assert.Contains("No valid VHDX header found", (await RefusedAsync(img)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_region_table_with_a_bad_checksum_is_refused()
    {
        byte[] img = await ImageAsync();
        img[Rt + 40] ^= 1;
        Assert.Contains("region table checksum", (await RefusedAsync(img)).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("overlap")]
    [InlineData("log")]
    [InlineData("beyond")]
    [InlineData("header")]
    [InlineData("count")]
    [InlineData("required")]
    [InlineData("missing")]
    public async Task Bad_region_tables_are_refused(string damage)
    {
        byte[] img = await ImageAsync();
        int e0 = Rt + VhdxRegionTable.EntriesOffset;
        int e1 = e0 + VhdxRegionEntry.Size;
        switch (damage)
        {
            case "overlap":
                BinaryPrimitives.WriteInt64LittleEndian(img.AsSpan(e1 + VhdxRegionEntry.FileOffsetOffset), RegionOffset(img, 0) + 4096);
                break;
            case "log":
                BinaryPrimitives.WriteInt64LittleEndian(img.AsSpan(e0 + VhdxRegionEntry.FileOffsetOffset), 1 << 20);
                break;
            case "beyond":
                BinaryPrimitives.WriteInt64LittleEndian(img.AsSpan(e0 + VhdxRegionEntry.FileOffsetOffset), long.MaxValue - 10);
                break;
            case "header":
                BinaryPrimitives.WriteInt64LittleEndian(img.AsSpan(e0 + VhdxRegionEntry.FileOffsetOffset), 4096);
                break;
            case "count":
                BinaryPrimitives.WriteUInt32LittleEndian(img.AsSpan(Rt + VhdxRegionTable.EntryCountOffset), 100_000);
                break;
            case "required":
                BinaryPrimitives.WriteUInt32LittleEndian(img.AsSpan(Rt + VhdxRegionTable.EntryCountOffset), 3);
                Guid.NewGuid().TryWriteBytes(img.AsSpan(e1 + VhdxRegionEntry.Size, 16));
                BinaryPrimitives.WriteInt64LittleEndian(img.AsSpan(e1 + VhdxRegionEntry.Size + VhdxRegionEntry.FileOffsetOffset), 6 << 20);
                BinaryPrimitives.WriteUInt32LittleEndian(img.AsSpan(e1 + VhdxRegionEntry.Size + VhdxRegionEntry.LengthOffset), 4096);
                BinaryPrimitives.WriteUInt32LittleEndian(img.AsSpan(e1 + VhdxRegionEntry.Size + VhdxRegionEntry.FlagsOffset), 1);
                break;
            case "missing":
                BinaryPrimitives.WriteUInt32LittleEndian(img.AsSpan(Rt + VhdxRegionTable.EntryCountOffset), 1);
                break;
        }

        ResealRegions(img);
        var ex = await RefusedAsync(img);
        Assert.True(ex is ImageCorruptException || ((BlockException)ex).Errno == Errno.EOPNOTSUPP, ex.Message);
    }

    [Theory]
    [InlineData("size", "virtual disk size")]
    [InlineData("block0", "block size")]
    [InlineData("block3M", "block size")]
    [InlineData("sector", "logical sector size")]
    [InlineData("item", "metadata item offset")]
    [InlineData("signature", "metadata table signature")]
    [InlineData("parent", "parent")]
    [InlineData("count", "metadata table entry count")]
    public async Task Bad_metadata_is_refused_naming_the_field(string damage, string field)
    {
        byte[] img = await ImageAsync();
        int md = (int)RegionOffset(img, 1);
        int items = md + VhdxLayout.MetadataTableSize;
        switch (damage)
        {
            case "size":
                BinaryPrimitives.WriteUInt64LittleEndian(img.AsSpan(items + 8), ulong.MaxValue);
                break;
            case "block0":
                BinaryPrimitives.WriteUInt32LittleEndian(img.AsSpan(items), 0);
                break;
            case "block3M":
                BinaryPrimitives.WriteUInt32LittleEndian(img.AsSpan(items), 3 << 20);
                break;
            case "sector":
                BinaryPrimitives.WriteUInt32LittleEndian(img.AsSpan(items + 32), 1000);
                break;
            case "item":
                BinaryPrimitives.WriteUInt32LittleEndian(img.AsSpan(md + VhdxMetadataTable.EntriesOffset + VhdxMetadataEntry.OffsetOffset), 0xFFFFFF00);
                break;
            case "signature":
                img[md] ^= 1;
                break;
            case "parent":
                img[items + 4] |= 2;
                break;
            case "count":
                BinaryPrimitives.WriteUInt16LittleEndian(img.AsSpan(md + VhdxMetadataTable.EntryCountOffset), 60000);
                break;
        }

        Assert.Contains(field, (await RefusedAsync(img)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_bat_entry_past_the_end_of_the_file_is_refused_as_truncated()
    {
        byte[] img = await ImageAsync();
        int bat = (int)RegionOffset(img, 0);
        BinaryPrimitives.WriteUInt64LittleEndian(img.AsSpan(bat), VhdxBatEntry.Of(VhdxBlockState.FullyPresent, 1L << 40).Raw);
        var ex = await RefusedAsync(img);
        Assert.Contains("BAT entry 0", ex.Message, StringComparison.Ordinal);
        Assert.Contains("Image has probably been truncated", ex.Message, StringComparison.Ordinal);
        BinaryPrimitives.WriteUInt64LittleEndian(img.AsSpan(bat), VhdxBatEntry.Of(VhdxBlockState.FullyPresent, bat).Raw);
        Assert.Contains("overlaps", (await RefusedAsync(img)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_bat_region_too_small_for_the_disk_is_refused()
    {
        byte[] img = await ImageAsync();
        BinaryPrimitives.WriteUInt32LittleEndian(img.AsSpan(Rt + VhdxRegionTable.EntriesOffset + VhdxRegionEntry.LengthOffset), 8);
        ResealRegions(img);
        Assert.Contains("BAT region length", (await RefusedAsync(img)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Partially_present_and_undefined_states_fail_the_request_with_eio()
    {
        byte[] img = await ImageAsync();
        int bat = (int)RegionOffset(img, 0);
        BinaryPrimitives.WriteUInt64LittleEndian(img.AsSpan(bat + 8), (ulong)(9 << 20) | 7);
        BinaryPrimitives.WriteUInt64LittleEndian(img.AsSpan(bat + 16), 5);
        await using var n = await VhdxTestImage.OpenAsync(VhdxTestImage.File(img));
        var e1 = await Assert.ThrowsAsync<BlockException>(async () => await n.ReadAsync(Block, new byte[512]));
        Assert.Equal(Errno.EIO, e1.Errno);
        var e2 = await Assert.ThrowsAsync<BlockException>(async () => await n.WriteAsync(2 * Block, new byte[512]));
        Assert.Equal(Errno.EIO, e2.Errno);
        Assert.Equal(new byte[512], await VhdxIoTests.ReadAsync(n, 0, 512));
    }

    [Fact]
    public async Task A_log_beyond_the_file_or_misaligned_is_refused()
    {
        byte[] img = await ImageAsync();
        BinaryPrimitives.WriteUInt32LittleEndian(img.AsSpan(H1 + VhdxHeader.LogLengthOffset), 0xFFF00000);
        BinaryPrimitives.WriteUInt32LittleEndian(img.AsSpan(H2 + VhdxHeader.LogLengthOffset), 0xFFF00000);
        ResealHeader(img, H1);
        ResealHeader(img, H2);
        Assert.Contains("log offset", (await RefusedAsync(img)).Message, StringComparison.Ordinal);
        byte[] img2 = await ImageAsync();
        BinaryPrimitives.WriteUInt64LittleEndian(img2.AsSpan(H1 + VhdxHeader.LogOffsetOffset), 12345);
        BinaryPrimitives.WriteUInt64LittleEndian(img2.AsSpan(H2 + VhdxHeader.LogOffsetOffset), 12345);
        ResealHeader(img2, H1);
        ResealHeader(img2, H2);
        Assert.Contains("log offset", (await RefusedAsync(img2)).Message, StringComparison.Ordinal);
    }

    /// <summary>Puts one sealed log entry with the given descriptors at the start of the log and names it in both headers.</summary>
    internal static void LeaveLog(byte[] img, Func<ulong, VhdxLogDescriptor[]> descriptors, ulong flushed)
    {
        var guid = Guid.NewGuid();
        const ulong seq = 5;
        var ds = descriptors(seq);
        int descSectors = VhdxLogEntryHeader.DescriptorSectors((uint)ds.Length);
        int data = ds.Count(d => d.Signature == VhdxLayout.LogDataDescriptorSignature);
        byte[] e = new byte[(descSectors + data) * 4096];
        new VhdxLogEntryHeader
        {
            Signature = VhdxLayout.LogEntrySignature,
            EntryLength = (uint)e.Length,
            SequenceNumber = seq,
            DescriptorCount = (uint)ds.Length,
            LogGuid = guid,
            FlushedFileOffset = flushed,
            LastFileOffset = flushed,
        }.Write(e);
        for (int i = 0; i < ds.Length; i++)
            ds[i].Write(e.AsSpan(VhdxLogEntryHeader.Size + (i * VhdxLogDescriptor.Size)));
        for (int i = 0; i < data; i++)
        {
            var s = e.AsSpan((descSectors + i) * 4096, 4096);
            BinaryPrimitives.WriteUInt32LittleEndian(s, VhdxLayout.LogDataSectorSignature);
            BinaryPrimitives.WriteUInt32LittleEndian(s[VhdxLogDescriptor.DataSectorSequenceLowOffset..], (uint)seq);
        }

        VhdxLayout.Seal(e, VhdxLogEntryHeader.ChecksumOffset);
        e.CopyTo(img, 1 << 20);
        foreach (int h in (int[])[H1, H2])
        {
            guid.TryWriteBytes(img.AsSpan(h + VhdxHeader.LogGuidOffset, 16));
            ResealHeader(img, h);
        }
    }

    [Fact]
    public async Task A_log_whose_descriptors_point_far_past_the_file_is_refused_without_writing_there()
    {
        byte[] img = await ImageAsync();
        LeaveLog(img, seq => [new VhdxLogDescriptor { Signature = VhdxLayout.LogZeroDescriptorSignature, LeadingBytes = 1UL << 50, FileOffset = 1UL << 40, SequenceNumber = seq }], (ulong)img.Length);
        Assert.Contains("log descriptor file offset", (await RefusedAsync(img, readOnly: false)).Message, StringComparison.Ordinal);
        // Read-only, the same image is refused with QEMU's hint before anything is replayed.
        Assert.Contains("qemu-img check -r all", (await RefusedAsync(img)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_log_claiming_a_longer_file_than_there_is_is_refused_as_truncated()
    {
        byte[] img = await ImageAsync();
        LeaveLog(img, seq => [new VhdxLogDescriptor { Signature = VhdxLayout.LogZeroDescriptorSignature, LeadingBytes = 4096, FileOffset = 6 << 20, SequenceNumber = seq }], (ulong)img.Length * 4);
        Assert.Contains("truncated", (await RefusedAsync(img, readOnly: false)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_replayed_zero_descriptor_and_data_descriptor_land_where_they_say()
    {
        byte[] img = await ImageAsync();
        int md = (int)RegionOffset(img, 1);
        // Zero 4 KiB of the slack past the metadata, and rewrite one sector there through a data descriptor.
        img.AsSpan(md + (2 << 20), 8192).Fill(0x77);
        LeaveLog(img, seq =>
        [
            new VhdxLogDescriptor { Signature = VhdxLayout.LogZeroDescriptorSignature, LeadingBytes = 4096, FileOffset = (ulong)(md + (2 << 20)), SequenceNumber = seq },
            new VhdxLogDescriptor { Signature = VhdxLayout.LogDataDescriptorSignature, LeadingBytes = 0x0102030405060708, TrailingBytes = 0x0a0b0c0d, FileOffset = (ulong)(md + (2 << 20) + 4096), SequenceNumber = seq },
        ], (ulong)img.Length);
        var file = VhdxTestImage.File(img);
        await using (var n = await VhdxTestImage.OpenAsync(file))
            Assert.True(n.LogReplayedOnOpen);
        byte[] after = file.ToArray();
        Assert.False(after.AsSpan(md + (2 << 20), 4096).ContainsAnyExcept((byte)0));
        Assert.Equal(0x0102030405060708UL, BinaryPrimitives.ReadUInt64LittleEndian(after.AsSpan(md + (2 << 20) + 4096)));
        Assert.False(after.AsSpan(md + (2 << 20) + 4096 + 8, 4084).ContainsAnyExcept((byte)0));
        Assert.Equal(0x0a0b0c0du, BinaryPrimitives.ReadUInt32LittleEndian(after.AsSpan(md + (2 << 20) + 8192 - 4)));
        Assert.True(VhdxHeader.TryRead(after.AsSpan(H1), out var h1));
        Assert.True(VhdxHeader.TryRead(after.AsSpan(H2), out var h2));
        Assert.Equal(Guid.Empty, h1.LogGuid);
        Assert.Equal(Guid.Empty, h2.LogGuid);
    }
}
