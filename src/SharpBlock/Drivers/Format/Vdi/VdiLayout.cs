namespace SharpBlock.Drivers.Format.Vdi;

/// <summary>VirtualBox disk image constants, and the limits QEMU 7.2 puts on them.</summary>
public static class VdiLayout
{
    /// <summary>Little-endian at byte 0x40, after the pre-header text.</summary>
    public const uint Signature = 0xbeda107f;

    /// <summary>Major 1, minor 1: the only version QEMU reads (and writes).</summary>
    public const uint Version11 = 0x00010001;

    public const uint TypeDynamic = 1;
    public const uint TypeStatic = 2;

    /// <summary>The header_size field QEMU writes: the v1.1 header body after text, signature and version.</summary>
    public const uint HeaderSizeField = 0x180;

    /// <summary>The only sector size QEMU accepts; also the alignment of the block map and of the data area.</summary>
    public const int SectorSize = 512;

    /// <summary>The only block size QEMU accepts (1 MiB); QEMU calls blocks clusters.</summary>
    public const int BlockSize = 1 << 20;

    /// <summary>A block never written: QEMU reads it as zeros.</summary>
    public const uint Unallocated = 0xffffffff;

    /// <summary>A block VirtualBox discarded: reads as zeros.</summary>
    public const uint Discarded = 0xfffffffe;

    /// <summary>
    /// QEMU's cap on blocks_in_image: the block map (4 bytes a block) must fit one request (INT_MAX rounded down
    /// to a sector), which also bounds the map we hold in memory to just under 2 GiB.
    /// </summary>
    public const uint MaxBlocks = 0x1fffff80;

    /// <summary>The largest virtual size QEMU accepts, at create and at open.</summary>
    public const ulong MaxDiskSize = (ulong)MaxBlocks * BlockSize;

    /// <summary>The text QEMU puts before the signature of the images it makes (the value does not matter to readers).</summary>
    public const string Text = "<<< QEMU VM Virtual Disk Image >>>\n";

    public static bool IsAllocated(uint entry) => entry < Discarded;
}
