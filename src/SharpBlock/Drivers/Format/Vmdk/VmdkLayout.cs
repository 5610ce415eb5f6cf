namespace SharpBlock.Drivers.Format.Vmdk;

/// <summary>
/// VMDK's on-disk constants (the hosted sparse extent, version 1 to 3) and the limits QEMU puts on the values
/// an image may hold, each with the damage it stops.
/// </summary>
public static class VmdkLayout
{
    public const int SectorSize = 512;

    /// <summary>"KDMV" as the first four bytes of a hosted sparse extent, read little-endian.</summary>
    public const uint Magic = 0x564D444B;

    /// <summary>"COWD": the older ESX sparse extent (VMDK3), which we recognise but do not read.</summary>
    public const uint Vmdk3Magic = 0x44574F43;

    /// <summary>Header flag: the check bytes hold "\n \r\n" so a text-mode transfer can be detected.</summary>
    public const uint FlagNewlineDetect = 1u << 0;

    /// <summary>Header flag: a redundant grain directory and its grain tables exist (rgd_offset).</summary>
    public const uint FlagRedundantGrainTable = 1u << 1;

    /// <summary>Header flag: a grain table entry of 1 means a grain that reads zeros (version 2 and later).</summary>
    public const uint FlagZeroGrain = 1u << 2;

    /// <summary>Header flag: grains are deflate-compressed (streamOptimized).</summary>
    public const uint FlagCompressed = 1u << 16;

    /// <summary>Header flag: every grain and table is preceded by a marker (streamOptimized).</summary>
    public const uint FlagMarkers = 1u << 17;

    public const ushort CompressionNone = 0;
    public const ushort CompressionDeflate = 1;

    /// <summary>gd_offset value meaning "the grain directory is named by the footer at the end of the file".</summary>
    public const ulong GdAtEnd = ulong.MaxValue;

    /// <summary>The grain table entry of a zeroed grain (with <see cref="FlagZeroGrain"/>).</summary>
    public const uint GteZeroed = 1;

    /// <summary>The check bytes "\n \r\n" as one little-endian word.</summary>
    public const uint CheckBytes = 0x0A0D200A;

    /// <summary>Highest header version QEMU reads; 3 (changed block tracking) only read-only unless compressed.</summary>
    public const uint MaxVersion = 3;

    /// <summary>QEMU's cap on grain table entries: keeps one table (and its cache slot) small.</summary>
    public const uint MaxGtesPerGt = 512;

    /// <summary>QEMU's cap on the grain size in sectors (1 GiB grains): a grain buffer cannot be made arbitrarily large.</summary>
    public const ulong MaxGrainSectors = 0x200000;

    /// <summary>
    /// Our cap on a compressed grain: a compressed read holds the whole grain in memory, so a hostile header
    /// with 1 GiB grains must not make one read allocate gigabytes. Real streamOptimized images use 64 KiB.
    /// </summary>
    public const long MaxCompressedGrainBytes = 16 << 20;

    /// <summary>QEMU's cap on grain directory entries (32 Mi, 128 MiB of directory): bounds the directory read at open.</summary>
    public const long MaxGdEntries = 32L * 1024 * 1024;

    /// <summary>Grain table entries are 32-bit sector numbers: nothing can be allocated at or past 2^32 sectors.</summary>
    public const long MaxExtentSectors = 1L << 32;

    /// <summary>QEMU reads at most this much of a descriptor (1 MiB - 1), whatever the file size.</summary>
    public const int MaxDescriptorBytes = (1 << 20) - 1;

    /// <summary>The descriptor area QEMU reads and rewrites for the CID (20 sectors).</summary>
    public const int DescriptorAreaBytes = 20 * SectorSize;

    /// <summary>The longest extent file name a descriptor line may give (QEMU's buffer).</summary>
    public const int MaxExtentFileName = 511;

    // ---- What qemu-img writes for a new sparse extent ----

    /// <summary>Sectors per grain of a new image (64 KiB grains).</summary>
    public const long DefaultGrainSectors = 128;

    /// <summary>Entries per grain table of a new image (one table covers 32 MiB).</summary>
    public const int DefaultGtesPerGt = 512;

    /// <summary>Where the embedded descriptor of a new sparse extent starts, and how many sectors it may use.</summary>
    public const long DefaultDescriptorSector = 1;
    public const long DefaultDescriptorSectors = 20;

    /// <summary>The largest extent of the twoGbMaxExtent subformats, in sectors (2 GiB).</summary>
    public const long SplitExtentSectors = 4L * 1024 * 1024;

    /// <summary>The parentCID of an image without a parent.</summary>
    public const uint NoParentCid = 0xFFFFFFFF;

    // ---- Stream markers ----

    /// <summary>A grain marker: the grain's first sector (8 bytes) and the compressed length (4 bytes), then the data.</summary>
    public const int GrainMarkerSize = 12;

    public const uint MarkerEndOfStream = 0;
    public const uint MarkerGrainTable = 1;
    public const uint MarkerGrainDirectory = 2;
    public const uint MarkerFooter = 3;

    /// <summary>The footer of a stream: a footer marker sector, a copy of the header, and the end-of-stream sector.</summary>
    public const int FooterBytes = 3 * SectorSize;
}
