using SharpBlock.Drivers.Creation;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Io;

namespace SharpBlock.Drivers.Format.Parallels;

/// <summary>
/// Creates Parallels images as QEMU lays them out: the extended magic, the header and an empty BAT padded to
/// whole clusters, data_off pointing just after them. The BAT is zeros, so only the header is written and
/// the file is extended to the data offset.
/// </summary>
public static class ParallelsCreator
{
    /// <summary>The cluster size QEMU uses for <paramref name="clusterSize"/>: rounded up to whole sectors.</summary>
    public static ulong RoundCluster(ulong clusterSize) =>
        clusterSize > ulong.MaxValue - ParallelsLayout.SectorSize ? ulong.MaxValue : (clusterSize + ParallelsLayout.SectorSize - 1) & ~(ulong)(ParallelsLayout.SectorSize - 1);

    /// <summary>qemu-img's refusals, on the size and cluster size rounded up to whole sectors.</summary>
    public static void Validate(long size, ulong clusterSize)
    {
        if (size < 0)
            throw new BlockException(Errno.EINVAL, "Image size must be non-negative");
        ulong total = ((ulong)size + ParallelsLayout.SectorSize - 1) & ~(ulong)(ParallelsLayout.SectorSize - 1);
        if (clusterSize > int.MaxValue)
            throw new BlockException(Errno.EINVAL, "Cluster size is too large");
        ulong cl = RoundCluster(clusterSize);
        // The virtual size must stay under 2^32 clusters (a zero cluster size fails this too, as in QEMU).
        if (total >= ParallelsLayout.MaxImageFactor * cl)
            throw new BlockException(Errno.E2BIG, "Image size is too large for this cluster size");
    }

    public static async ValueTask CreateAsync(string path, long size, ulong clusterSize, CancellationToken cancellationToken = default)
    {
        var (head, length) = Build(size, clusterSize);
        using var fs = ImageFiles.Create(path);
        await fs.WriteAsync(head, cancellationToken).ConfigureAwait(false);
        fs.SetLength(length);
        await fs.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Writes a new image over an empty node (memory in tests, or any protocol node).</summary>
    public static async ValueTask CreateAsync(BlockNode file, long size, ulong clusterSize, CancellationToken cancellationToken = default)
    {
        var (head, length) = Build(size, clusterSize);
        await file.WriteAsync(0, head, RequestFlags.None, cancellationToken).ConfigureAwait(false);
        await file.TruncateAsync(length, cancellationToken).ConfigureAwait(false);
        await file.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The first sector of a new image (header, start of the BAT) and the file's length (header and BAT in whole clusters).</summary>
    private static (byte[] Head, long Length) Build(long size, ulong clusterSize)
    {
        Validate(size, clusterSize);
        ulong total = ((ulong)size + ParallelsLayout.SectorSize - 1) & ~(ulong)(ParallelsLayout.SectorSize - 1);
        ulong cl = RoundCluster(clusterSize);
        ulong batEntries = (total + cl - 1) / cl;
        ulong tableBytes = ParallelsHeader.Size + (batEntries * 4);
        ulong dataOff = (tableBytes + cl - 1) / cl * cl / ParallelsLayout.SectorSize;
        byte[] head = new byte[ParallelsLayout.SectorSize];
        new ParallelsHeader
        {
            Magic = ParallelsLayout.MagicClusters,
            Version = ParallelsLayout.Version,
            Heads = ParallelsLayout.Heads,
            Cylinders = (uint)(total / ParallelsLayout.SectorSize / ParallelsLayout.Heads / ParallelsLayout.SectorsPerCylinderTrack),
            Tracks = (uint)(cl / ParallelsLayout.SectorSize),
            BatEntries = (uint)batEntries,
            NbSectors = total / ParallelsLayout.SectorSize,
            DataOff = (uint)dataOff,
        }.Write(head);
        return (head, (long)dataOff * ParallelsLayout.SectorSize);
    }
}
