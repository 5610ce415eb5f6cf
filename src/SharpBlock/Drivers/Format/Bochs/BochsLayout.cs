namespace SharpBlock.Drivers.Format.Bochs;

/// <summary>Bochs growing redolog image constants, and the limits QEMU 7.2 puts on them.</summary>
public static class BochsLayout
{
    public const string Magic = "Bochs Virtual HD Image";
    public const string TypeRedolog = "Redolog";
    public const string SubtypeGrowing = "Growing";

    /// <summary>The current header: a timestamp sits before the disk size.</summary>
    public const uint Version2 = 0x00020000;

    /// <summary>The first header: the disk size follows the extent size directly.</summary>
    public const uint Version1 = 0x00010000;

    public const int SectorSize = 512;

    /// <summary>A catalog entry for an extent never written: reads as zeros.</summary>
    public const uint Unallocated = 0xffffffff;

    /// <summary>QEMU's cap on catalog entries (enough for the largest image bximage makes), bounding the allocation.</summary>
    public const uint MaxCatalog = 0x100000;

    /// <summary>QEMU's cap on the extent size (8 MiB).</summary>
    public const uint MaxExtent = 0x800000;
}
