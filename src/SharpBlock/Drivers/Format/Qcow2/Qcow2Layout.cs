namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>
/// Constants of the qcow2 on-disk format (QEMU's docs/interop/qcow2.txt). Limits are QEMU's: an image
/// that exceeds one is refused at open, because each one bounds memory or I/O a hostile file could demand.
/// </summary>
public static class Qcow2Layout
{
    /// <summary>"QFI\xfb".</summary>
    public const uint Magic = 0x514649FB;

    public const int MinClusterBits = 9;
    public const int MaxClusterBits = 21;
    public const int DefaultClusterBits = 16;

    /// <summary>QEMU refuses L1 tables above 32 MiB: each entry maps a whole L2 table, and we hold L1 in memory.</summary>
    public const long MaxL1Bytes = 32L << 20;

    /// <summary>The refcount table is held in memory too; QEMU's 8 MiB cap.</summary>
    public const long MaxRefcountTableBytes = 8L << 20;

    public const int MaxSnapshots = 65536;
    public const int MaxSnapshotExtraData = 1024;
    public const int MaxBackingFileName = 1023;

    /// <summary>Header extension types.</summary>
    public const uint ExtEnd = 0;
    public const uint ExtBackingFormat = 0xE2792ACA;
    public const uint ExtFeatureNameTable = 0x6803f857;
    public const uint ExtBitmaps = 0x23852875;

    /// <summary>Incompatible feature bits.</summary>
    public const ulong IncompatDirty = 1UL << 0;
    public const ulong IncompatCorrupt = 1UL << 1;
    public const ulong IncompatDataFile = 1UL << 2;
    public const ulong IncompatCompression = 1UL << 3;
    public const ulong IncompatExtendedL2 = 1UL << 4;

    /// <summary>The incompatible bits this driver implements; any other set bit refuses the open.</summary>
    public const ulong IncompatSupported = IncompatDirty | IncompatCorrupt;

    /// <summary>Compatible feature bits.</summary>
    public const ulong CompatLazyRefcounts = 1UL << 0;

    /// <summary>Autoclear bit: the bitmaps extension is valid (a writer that does not know bitmaps clears it).</summary>
    public const ulong AutoclearBitmaps = 1UL << 0;

    /// <summary>Autoclear bits we keep consistent; every other set bit is cleared on a read-write open.</summary>
    public const ulong AutoclearSupported = AutoclearBitmaps;

    /// <summary>Persistent bitmaps: QEMU's limits. Each bounds what a hostile directory could make us read or hold.</summary>
    public const int MaxBitmaps = 65535;
    public const long MaxBitmapDirectoryBytes = 64L << 20;
    public const int MaxBitmapNameBytes = 1023;
    public const int MinBitmapGranularityBits = 9;
    public const int MaxBitmapGranularityBits = 31;
    public const long MaxBitmapTableEntries = 0x8000000;

    /// <summary>The in-memory size of one bitmap's bits (QEMU's cap, 512 MiB).</summary>
    public const long MaxBitmapBytes = 0x20000000;

    /// <summary>Bitmap directory entry flags and the one bitmap type.</summary>
    public const uint BitmapInUse = 1U << 0;
    public const uint BitmapAuto = 1U << 1;
    public const uint BitmapExtraDataCompatible = 1U << 2;
    public const uint BitmapKnownFlags = BitmapInUse | BitmapAuto | BitmapExtraDataCompatible;
    public const byte BitmapTypeDirtyTracking = 1;

    /// <summary>A bitmap table entry: bits 9..55 a host cluster; with no cluster, bit 0 set means every bit is one.</summary>
    public const ulong BitmapTableAllOnes = 1UL << 0;
    public const ulong BitmapTableReservedMask = 0xFF000000000001FEUL;

    /// <summary>L1 and L2 entry bits.</summary>
    public const ulong OflagCopied = 1UL << 63;
    public const ulong OflagCompressed = 1UL << 62;
    public const ulong OflagZero = 1UL << 0;

    /// <summary>Bits 9..55: a host offset in an L1 entry, standard L2 entry or refcount table entry.</summary>
    public const ulong OffsetMask = 0x00FFFFFFFFFFFE00UL;

    /// <summary>Reserved bits that must be clear in an L1 entry.</summary>
    public const ulong L1ReservedMask = 0x7F000000000001FFUL;

    /// <summary>Reserved bits that must be clear in a standard L2 entry (bit 0 is the zero flag on v3).</summary>
    public const ulong L2ReservedMask = 0x3F000000000001FEUL;

    /// <summary>Compressed data is counted in 512-byte sectors.</summary>
    public const int CompressedSectorSize = 512;

    /// <summary>The fixed part of a version 2 header; version 3 headers are at least <see cref="V3HeaderSize"/>.</summary>
    public const int V2HeaderSize = 72;
    public const int V3HeaderSize = 104;

    /// <summary>The header length QEMU 7.2 writes: the compression type byte, padded to 8.</summary>
    public const int CurrentHeaderSize = 112;

    /// <summary>The first bit of a compressed descriptor's sector count: x = 62 - (cluster_bits - 8).</summary>
    public static int CompressedSectorShift(int clusterBits) => 62 - (clusterBits - 8);
}
