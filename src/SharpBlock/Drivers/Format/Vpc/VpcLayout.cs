namespace SharpBlock.Drivers.Format.Vpc;

/// <summary>Virtual PC (VHD) constants, and the limits QEMU 7.2 puts on them.</summary>
public static class VpcLayout
{
    public const int SectorSize = 512;

    /// <summary>The footer's cookie, at the end of every image and at byte 0 of a dynamic one.</summary>
    public static ReadOnlySpan<byte> FooterCookie => "conectix"u8;

    /// <summary>The dynamic disk header's cookie.</summary>
    public static ReadOnlySpan<byte> SparseCookie => "cxsparse"u8;

    public const uint TypeFixed = 2;
    public const uint TypeDynamic = 3;
    public const uint TypeDifferencing = 4;

    /// <summary>A block with no data in the file (the BAT's "unused" value).</summary>
    public const uint Unallocated = 0xffffffff;

    /// <summary>The block size QEMU gives new dynamic images.</summary>
    public const int DefaultBlockSize = 2 << 20;

    /// <summary>Where QEMU puts the dynamic header (after the footer copy) and the BAT (after the 1 KiB header).</summary>
    public const long DynamicHeaderOffset = SectorSize;
    public const long BatOffset = 3 * SectorSize;

    /// <summary>QEMU's largest virtual size, 2040 GiB (the footer's sector count stays below 2^32).</summary>
    public const long MaxSectors = 0xff000000L;

    /// <summary>The largest CHS geometry (65535 x 16 x 255); an image with it takes its size from current_size.</summary>
    public const long MaxGeometrySectors = 65535L * 16 * 255;

    /// <summary>Seconds from the Unix epoch to 2000-01-01, the VHD timestamp's origin.</summary>
    public const long TimestampBase = 946684800;

    /// <summary>
    /// QEMU's cap on max_table_entries (the BAT is read in one request, 4 bytes an entry); it bounds the table
    /// we hold in memory to under 2 GiB, and only after the table was found inside the file.
    /// </summary>
    public const uint MaxTableEntries = int.MaxValue / 4;

    /// <summary>Bytes of sector bitmap before each block's data: one bit a sector, rounded up to whole sectors.</summary>
    public static long BitmapSize(long blockSize) => ((blockSize / (8 * SectorSize)) + 511) & ~511L;

    /// <summary>One's complement of the byte sum, with the checksum field counted as zero.</summary>
    public static uint Checksum(ReadOnlySpan<byte> structure, int checksumOffset)
    {
        uint sum = 0;
        for (int i = 0; i < structure.Length; i++)
        {
            if (i < checksumOffset || i >= checksumOffset + 4)
                sum += structure[i];
        }

        return ~sum;
    }
}
