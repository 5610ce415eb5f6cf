using System.Buffers.Binary;
using SharpBlock.Drivers.Format.Vhdx;

namespace SharpBlock.Tests.Drivers.Vhdx;

/// <summary>The on-disk constants and structures, frozen: a change here breaks every image in the field.</summary>
public class VhdxStructureTests
{
    [Fact]
    public void Layout_constants_are_the_specs()
    {
        Assert.Equal(64 * 1024, VhdxLayout.Header1Offset);
        Assert.Equal(128 * 1024, VhdxLayout.Header2Offset);
        Assert.Equal(192 * 1024, VhdxLayout.RegionTable1Offset);
        Assert.Equal(256 * 1024, VhdxLayout.RegionTable2Offset);
        Assert.Equal(1 << 20, VhdxLayout.HeaderSectionEnd);
        Assert.Equal("vhdxfile"u8.ToArray(), VhdxLayout.FileSignature.ToArray());
        Assert.Equal("head"u8.ToArray(), BitConverter.GetBytes(VhdxLayout.HeaderSignature));
        Assert.Equal("regi"u8.ToArray(), BitConverter.GetBytes(VhdxLayout.RegionSignature));
        Assert.Equal("metadata"u8.ToArray(), BitConverter.GetBytes(VhdxLayout.MetadataSignature));
        Assert.Equal("loge"u8.ToArray(), BitConverter.GetBytes(VhdxLayout.LogEntrySignature));
        Assert.Equal("desc"u8.ToArray(), BitConverter.GetBytes(VhdxLayout.LogDataDescriptorSignature));
        Assert.Equal("zero"u8.ToArray(), BitConverter.GetBytes(VhdxLayout.LogZeroDescriptorSignature));
        Assert.Equal("data"u8.ToArray(), BitConverter.GetBytes(VhdxLayout.LogDataSectorSignature));
        Assert.Equal(80, VhdxHeader.LogOffsetOffset + 8);
        Assert.Equal(64, VhdxLogEntryHeader.Size);
        Assert.Equal(32, VhdxLogDescriptor.Size);
        Assert.Equal(32, VhdxRegionEntry.Size);
        Assert.Equal(32, VhdxMetadataEntry.Size);
        Assert.Equal(0, (int)VhdxBlockState.NotPresent);
        Assert.Equal(1, (int)VhdxBlockState.Undefined);
        Assert.Equal(2, (int)VhdxBlockState.Zero);
        Assert.Equal(3, (int)VhdxBlockState.Unmapped);
        Assert.Equal(6, (int)VhdxBlockState.FullyPresent);
        Assert.Equal(7, (int)VhdxBlockState.PartiallyPresent);
    }

    [Fact]
    public void Guids_have_the_on_disk_bytes_qemu_writes()
    {
        // As a qemu-img image holds them (mixed-endian GUIDs, as Windows stores them).
        byte[] bat = new byte[16];
        VhdxLayout.BatRegion.TryWriteBytes(bat);
        Assert.Equal(Convert.FromHexString("6677c22d23f600429d64115e9bfd4a08"), bat);
        byte[] fp = new byte[16];
        VhdxLayout.FileParametersItem.TryWriteBytes(fp);
        Assert.Equal(Convert.FromHexString("3767a1ca36fa434db3b633f0aa44e76b"), fp);
    }

    [Fact]
    public void Crc32c_is_castagnoli_over_the_structure_with_its_field_zeroed()
    {
        // The standard check value of CRC-32C, and the bitwise definition over a buffer with its field zeroed.
        Assert.Equal(0xE3069283u, Reference("123456789"u8));
        byte[] sample = "123456789ABCDEFGH"u8.ToArray();
        byte[] zeroed = (byte[])sample.Clone();
        zeroed.AsSpan(4, 4).Clear();
        Assert.Equal(Reference(zeroed), VhdxLayout.Checksum(sample, 4));
        byte[] b = new byte[VhdxHeader.Size];
        new VhdxHeader { Signature = VhdxLayout.HeaderSignature, Version = 1, SequenceNumber = 7, LogLength = 1 << 20, LogOffset = 1 << 20 }.Write(b);
        Assert.True(VhdxLayout.ChecksumValid(b, VhdxHeader.ChecksumOffset));
        Assert.True(VhdxHeader.TryRead(b, out var h));
        Assert.Equal(7UL, h.SequenceNumber);
        b[100] ^= 1;
        Assert.False(VhdxHeader.TryRead(b, out _));
    }

    private static uint Reference(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++)
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F63B78 : crc >> 1;
        }

        return ~crc;
    }

    [Fact]
    public void Bat_entries_interleave_a_sector_bitmap_entry_per_chunk()
    {
        // 1 MiB blocks, 512-byte sectors: a chunk ratio of 4096 payload blocks per bitmap block.
        Assert.Equal(0, VhdxNode.BatEntries(0, 1 << 20, 4096));
        Assert.Equal(1, VhdxNode.BatEntries(1, 1 << 20, 4096));
        Assert.Equal(4096, VhdxNode.BatEntries(4096L << 20, 1 << 20, 4096));
        Assert.Equal(4098, VhdxNode.BatEntries(4097L << 20, 1 << 20, 4096));
        var e = VhdxBatEntry.Of(VhdxBlockState.FullyPresent, 9 << 20);
        Assert.Equal((9UL << 20) | 6, e.Raw);
        Assert.Equal(VhdxBlockState.Zero, VhdxBatEntry.Of(VhdxBlockState.Zero, 9 << 20).State);
        Assert.Equal(0, VhdxBatEntry.Of(VhdxBlockState.Zero, 9 << 20).FileOffset);
    }

    [Theory]
    [InlineData(100L << 20, 8L << 20)]
    [InlineData(1L << 30, 8L << 20)]
    [InlineData((1L << 30) + 512, 16L << 20)]
    [InlineData(101L << 30, 32L << 20)]
    [InlineData(33L << 40, 64L << 20)]
    public void Block_size_zero_picks_what_qemu_img_picks(long size, long block) => Assert.Equal(block, VhdxLayout.DefaultBlockSize(size));

    [Fact]
    public async Task A_new_image_is_laid_out_as_qemu_img_lays_it_out()
    {
        // qemu-img create -f vhdx x 100M: BAT at 2 MiB, metadata at 3 MiB, a file of 8 MiB, BAT all ZERO.
        byte[] img = await VhdxTestImage.CreateAsync(100 << 20, blockSize: 8 << 20);
        Assert.Equal(8 << 20, img.Length);
        var rt = VhdxRegionTable.Read(img.AsSpan((int)VhdxLayout.RegionTable1Offset));
        Assert.Equal(2u, rt.EntryCount);
        Assert.Equal(2UL << 20, rt.Entries[0].FileOffset);
        Assert.Equal(3UL << 20, rt.Entries[1].FileOffset);
        Assert.Equal(img.AsSpan((int)VhdxLayout.RegionTable1Offset, VhdxLayout.RegionTableSize).ToArray(), img.AsSpan((int)VhdxLayout.RegionTable2Offset, VhdxLayout.RegionTableSize).ToArray());
        Assert.Equal(2UL, BinaryPrimitives.ReadUInt64LittleEndian(img.AsSpan(2 << 20)));
        Assert.True(VhdxHeader.TryRead(img.AsSpan((int)VhdxLayout.Header1Offset), out var h1));
        Assert.True(VhdxHeader.TryRead(img.AsSpan((int)VhdxLayout.Header2Offset), out var h2));
        Assert.Equal(h1.SequenceNumber + 1, h2.SequenceNumber);
    }
}
