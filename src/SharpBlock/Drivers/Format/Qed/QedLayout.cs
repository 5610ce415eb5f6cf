namespace SharpBlock.Drivers.Format.Qed;

/// <summary>QED (QEMU Enhanced Disk) constants, and the limits QEMU 7.2 puts on them.</summary>
public static class QedLayout
{
    /// <summary>"QED\0" read as a little-endian 32-bit word.</summary>
    public const uint Magic = 0x00444551;

    /// <summary>The image names a backing file (its name follows the header).</summary>
    public const ulong FeatureBackingFile = 0x01;

    /// <summary>Set while allocating writes may have left tables behind their data; cleared on a clean close.</summary>
    public const ulong FeatureNeedCheck = 0x02;

    /// <summary>The backing file is raw and must not be probed.</summary>
    public const ulong FeatureBackingFormatNoProbe = 0x04;

    /// <summary>Every feature bit QEMU knows; any other bit makes the image unopenable.</summary>
    public const ulong KnownFeatures = FeatureBackingFile | FeatureNeedCheck | FeatureBackingFormatNoProbe;

    public const uint MinClusterSize = 4096;
    public const uint MaxClusterSize = 64 * 1024 * 1024;
    public const uint DefaultClusterSize = 64 * 1024;

    public const uint MinTableSize = 1;
    public const uint MaxTableSize = 16;
    public const uint DefaultTableSize = 4;

    /// <summary>Image sizes are whole 512-byte sectors.</summary>
    public const int SectorSize = 512;

    /// <summary>An L2 entry that reads as zeros without a data cluster (never in L1).</summary>
    public const ulong ZeroCluster = 1;

    /// <summary>The longest backing file name we accept (QEMU reads it into a PATH_MAX buffer).</summary>
    public const int MaxBackingFileName = 4095;

    public static bool IsPowerOfTwo(ulong v) => v != 0 && (v & (v - 1)) == 0;

    public static bool ClusterSizeValid(uint clusterSize) =>
        IsPowerOfTwo(clusterSize) && clusterSize >= MinClusterSize && clusterSize <= MaxClusterSize;

    public static bool TableSizeValid(uint tableSize) =>
        IsPowerOfTwo(tableSize) && tableSize >= MinTableSize && tableSize <= MaxTableSize;

    /// <summary>
    /// The largest image two levels of tables address. Computed in 64-bit arithmetic that wraps exactly as
    /// QEMU's does, so a huge cluster and table size give QEMU's (nonsensical) limit and the same refusal.
    /// </summary>
    public static ulong MaxImageSize(uint clusterSize, uint tableSize)
    {
        unchecked
        {
            ulong entries = (ulong)tableSize * clusterSize / sizeof(ulong);
            return entries * entries * clusterSize;
        }
    }

    public static bool ImageSizeValid(ulong size, uint clusterSize, uint tableSize) =>
        size % SectorSize == 0 && size <= MaxImageSize(clusterSize, tableSize);
}
