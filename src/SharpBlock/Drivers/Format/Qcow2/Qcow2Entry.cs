namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>What a guest cluster maps to, decoded from its L2 entry.</summary>
public enum Qcow2ClusterKind
{
    Unallocated,
    ZeroPlain,
    ZeroAllocated,
    Normal,
    Compressed,
}

/// <summary>
/// An L2 entry. Standard: bit 0 zero (v3), bits 9..55 host offset, bit 62 clear, bit 63 refcount is one.
/// Compressed (bit 62): bits 0..x-1 host byte offset, bits x..61 additional 512-byte sectors.
/// </summary>
public readonly record struct Qcow2L2Entry(ulong Raw)
{
    public const int Size = 8;

    public bool IsCompressed => (Raw & Qcow2Layout.OflagCompressed) != 0;
    public bool IsCopied => (Raw & Qcow2Layout.OflagCopied) != 0;
    public long HostOffset => (long)(Raw & Qcow2Layout.OffsetMask);

    public Qcow2ClusterKind Kind(bool v3)
    {
        if (IsCompressed)
            return Qcow2ClusterKind.Compressed;
        if (v3 && (Raw & Qcow2Layout.OflagZero) != 0)
            return HostOffset != 0 ? Qcow2ClusterKind.ZeroAllocated : Qcow2ClusterKind.ZeroPlain;
        return HostOffset != 0 ? Qcow2ClusterKind.Normal : Qcow2ClusterKind.Unallocated;
    }

    /// <summary>Host byte offset of compressed data.</summary>
    public long CompressedOffset(int clusterBits) =>
        (long)(Raw & ((1UL << Qcow2Layout.CompressedSectorShift(clusterBits)) - 1));

    /// <summary>Sectors spanned by compressed data, counted from the sector holding its first byte.</summary>
    public int CompressedSectors(int clusterBits)
    {
        int shift = Qcow2Layout.CompressedSectorShift(clusterBits);
        ulong mask = (1UL << (62 - shift)) - 1;
        return (int)((Raw >> shift) & mask) + 1;
    }

    public static Qcow2L2Entry MakeCompressed(long offset, int length, int clusterBits)
    {
        int shift = Qcow2Layout.CompressedSectorShift(clusterBits);
        long first = offset & ~511L;
        long sectors = (offset + length - first + 511) / 512;
        return new Qcow2L2Entry(Qcow2Layout.OflagCompressed | ((ulong)(sectors - 1) << shift) | (ulong)offset);
    }
}
