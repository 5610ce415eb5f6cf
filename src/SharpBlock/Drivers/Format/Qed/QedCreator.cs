using System.Globalization;
using System.Text;
using SharpBlock.Drivers.Creation;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Io;

namespace SharpBlock.Drivers.Format.Qed;

/// <summary>What a new QED image is made of: sizes as given (validated by <see cref="QedCreator.Validate"/>).</summary>
public sealed record QedCreateOptions
{
    public required long Size { get; init; }
    public uint ClusterSize { get; init; } = QedLayout.DefaultClusterSize;
    public uint TableSize { get; init; } = QedLayout.DefaultTableSize;
    public string? BackingFile { get; init; }
    public string? BackingFormat { get; init; }
}

/// <summary>
/// Creates QED images as QEMU lays them out: one header cluster (the backing name right after the 64-byte
/// header), then an empty L1 table of table_size clusters; data clusters and L2 tables are appended later.
/// </summary>
public static class QedCreator
{
    /// <summary>qemu-img's refusals, in its order and words; the size is checked rounded up to whole sectors.</summary>
    public static void Validate(QedCreateOptions o)
    {
        if (!QedLayout.ClusterSizeValid(o.ClusterSize))
            throw new BlockException(Errno.EINVAL, string.Create(CultureInfo.InvariantCulture, $"QED cluster size must be within range [{QedLayout.MinClusterSize}, {QedLayout.MaxClusterSize}] and power of 2"));
        if (!QedLayout.TableSizeValid(o.TableSize))
            throw new BlockException(Errno.EINVAL, string.Create(CultureInfo.InvariantCulture, $"QED table size must be within range [{QedLayout.MinTableSize}, {QedLayout.MaxTableSize}] and power of 2"));
        if (o.Size < 0 || !QedLayout.ImageSizeValid(RoundedSize(o.Size), o.ClusterSize, o.TableSize))
            throw new BlockException(Errno.EINVAL, string.Create(CultureInfo.InvariantCulture, $"QED image size must be a non-zero multiple of cluster size and less than {QedLayout.MaxImageSize(o.ClusterSize, o.TableSize)} bytes"));
        if (o.BackingFile != null && QedHeader.Size + Encoding.UTF8.GetByteCount(o.BackingFile) > o.ClusterSize)
            throw new BlockException(Errno.EINVAL, "Backing file name does not fit in the QED header cluster");
    }

    private static ulong RoundedSize(long size) => ((ulong)size + QedLayout.SectorSize - 1) & ~(ulong)(QedLayout.SectorSize - 1);

    /// <summary>Writes a new image through a plain file stream (the image tool holds the target's lock meanwhile).</summary>
    public static async ValueTask CreateAsync(string path, QedCreateOptions o, CancellationToken cancellationToken = default)
    {
        var (head, length) = Build(o);
        using var fs = ImageFiles.Create(path);
        await fs.WriteAsync(head, cancellationToken).ConfigureAwait(false);
        fs.SetLength(length);
        await fs.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Writes a new image over an empty node (memory in tests, or any protocol node).</summary>
    public static async ValueTask CreateAsync(BlockNode file, QedCreateOptions o, CancellationToken cancellationToken = default)
    {
        var (head, length) = Build(o);
        await file.WriteAsync(0, head, RequestFlags.None, cancellationToken).ConfigureAwait(false);
        await file.TruncateAsync(length, cancellationToken).ConfigureAwait(false);
        await file.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The header cluster, and the file's length: the L1 table after it is all zeros (a hole).</summary>
    private static (byte[] Head, long Length) Build(QedCreateOptions o)
    {
        Validate(o);
        byte[] head = new byte[o.ClusterSize];
        byte[] name = o.BackingFile != null ? Encoding.UTF8.GetBytes(o.BackingFile) : [];
        ulong features = 0;
        if (o.BackingFile != null)
        {
            features |= QedLayout.FeatureBackingFile;
            // Only a raw backing file is recorded, as "do not probe": QED has no field for any other format.
            if (o.BackingFormat == "raw")
                features |= QedLayout.FeatureBackingFormatNoProbe;
        }

        new QedHeader
        {
            Magic = QedLayout.Magic,
            ClusterSize = o.ClusterSize,
            TableSize = o.TableSize,
            HeaderSize = 1,
            Features = features,
            L1TableOffset = o.ClusterSize,
            ImageSize = RoundedSize(o.Size),
            BackingFilenameOffset = name.Length > 0 ? QedHeader.Size : 0u,
            BackingFilenameSize = (uint)name.Length,
        }.Write(head);
        name.CopyTo(head.AsSpan(QedHeader.Size));
        return (head, (long)o.ClusterSize * (1 + o.TableSize));
    }
}
