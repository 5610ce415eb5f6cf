namespace SharpBlock.Drivers.Format.Cow;

/// <summary>User-Mode Linux COW version 2 constants.</summary>
public static class CowLayout
{
    public const uint Magic = 0x4f4f4f4d;
    public const uint Version = 2;
    public const int SectorSize = 512;

    /// <summary>Our cap on the virtual size (the bitmap is held in memory: 2^40 bytes need a 256 MiB bitmap).</summary>
    public const ulong MaxDiskSize = 1UL << 40;

    public static long BitmapBytes(long size) => ((size / SectorSize) + 7) / 8;

    public static long DataOffset(long size) => (CowHeader.Size + BitmapBytes(size) + SectorSize - 1) / SectorSize * SectorSize;
}
