namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>img measure's arithmetic for qcow2, step for step as qemu-img counts, so both tools print the same figures.</summary>
internal static class Qcow2Measure
{
    /// <summary>File size of a fully preallocated image: data, header, L2 tables, L1 table, refcount structures.</summary>
    public static long FullyAllocated(long virtualSize, long clusterSize, int refcountBits)
    {
        long data = Align(virtualSize, clusterSize);
        long entriesPerCluster = clusterSize / 8;
        long meta = clusterSize;
        long l2Entries = Align(data / clusterSize, entriesPerCluster);
        meta += l2Entries * 8;
        long l1Entries = Align(l2Entries * 8 / clusterSize, entriesPerCluster);
        meta += l1Entries * 8;
        meta += RefcountMetadataSize((meta + data) / clusterSize, clusterSize, refcountBits);
        return meta + data;
    }

    /// <summary>The metadata of a full image, with only <paramref name="dataBytes"/> of its data clusters.</summary>
    public static long Required(long virtualSize, long clusterSize, int refcountBits, long dataBytes) =>
        FullyAllocated(virtualSize, clusterSize, refcountBits) - Align(virtualSize, clusterSize) + dataBytes;

    private static long Align(long v, long a) => (v + a - 1) / a * a;

    private static long DivRoundUp(long v, long d) => (v + d - 1) / d;

    /// <summary>Refcount table and blocks needed to count the given clusters plus themselves (a fixed point).</summary>
    private static long RefcountMetadataSize(long clusters, long clusterSize, int refcountBits)
    {
        long perTableCluster = clusterSize / 8;
        long perBlock = clusterSize * 8 / refcountBits;
        long table = 0, blocks = 0, n = 0, last;
        do
        {
            last = n;
            blocks = DivRoundUp(clusters + table + blocks, perBlock);
            table = DivRoundUp(blocks, perTableCluster);
            n = clusters + blocks + table;
        }
        while (n != last);
        return (blocks + table) * clusterSize;
    }
}
