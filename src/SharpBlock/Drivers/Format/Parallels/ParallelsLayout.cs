namespace SharpBlock.Drivers.Format.Parallels;

/// <summary>Parallels (expanding) disk image constants, and the limits QEMU 7.2 puts on them.</summary>
public static class ParallelsLayout
{
    /// <summary>The original magic: BAT entries count 512-byte sectors from the start of the file.</summary>
    public const string MagicSectors = "WithoutFreeSpace";

    /// <summary>The extended magic (QEMU writes it): BAT entries count clusters, and nb_sectors is 64 bits wide.</summary>
    public const string MagicClusters = "WithouFreSpacExt";

    public const int MagicLength = 16;

    /// <summary>The only version QEMU reads and writes.</summary>
    public const uint Version = 2;

    /// <summary>"Ynot" little-endian: set while a writer has the image open, cleared at a clean close.</summary>
    public const uint InUseMagic = 0x746F6E59;

    public const int SectorSize = 512;

    /// <summary>qemu-img's default cluster size (1 MiB).</summary>
    public const int DefaultClusterSize = 1 << 20;

    /// <summary>The geometry QEMU writes (unused by readers): 16 heads, 32 sectors a track.</summary>
    public const uint Heads = 16;

    public const uint SectorsPerCylinderTrack = 32;

    /// <summary>QEMU's cap on tracks (sectors a cluster): INT32_MAX / 513.</summary>
    public const uint MaxTracks = int.MaxValue / 513;

    /// <summary>QEMU's cap on bat_entries: the BAT must fit in INT_MAX bytes.</summary>
    public const uint MaxBatEntries = int.MaxValue / 4;

    /// <summary>At create, the virtual size must stay below 2^32 clusters (the BAT holds 32-bit cluster numbers).</summary>
    public const ulong MaxImageFactor = 1UL << 32;

    /// <summary>A BAT entry of 0: never written, reads as zeros.</summary>
    public const uint Unallocated = 0;
}
