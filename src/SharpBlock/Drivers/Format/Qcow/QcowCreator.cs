using System.Text;
using SharpBlock.Drivers.Creation;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Io;

namespace SharpBlock.Drivers.Format.Qcow;

/// <summary>
/// Creates qcow images as qemu-img lays them out: the header, the backing file name right after it, the L1
/// table at the next 8-byte boundary written as whole zero sectors; no L2 table or cluster yet.
/// </summary>
public static class QcowCreator
{
    public static void Validate(long size, string? backingFile)
    {
        if (size < 0)
            throw new BlockException(Errno.EINVAL, "Image size must be non-negative");
        if (backingFile != null && Encoding.UTF8.GetByteCount(backingFile) > QcowLayout.MaxBackingNameLength)
            throw new BlockException(Errno.EINVAL, "Backing file name too long");
    }

    /// <summary>Writes a new image at <paramref name="path"/> through a plain file stream (the image tool holds the target's lock).</summary>
    public static async ValueTask CreateAsync(string path, long size, string? backingFile, bool encrypted = false, CancellationToken cancellationToken = default)
    {
        byte[] image = Build(size, backingFile, encrypted);
        using var fs = ImageFiles.Create(path);
        await fs.WriteAsync(image, cancellationToken).ConfigureAwait(false);
        await fs.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Writes a new image over an empty node (memory in tests, or any protocol node).</summary>
    public static async ValueTask CreateAsync(BlockNode file, long size, string? backingFile, bool encrypted = false, CancellationToken cancellationToken = default)
    {
        byte[] image = Build(size, backingFile, encrypted);
        await file.WriteAsync(0, image, RequestFlags.None, cancellationToken).ConfigureAwait(false);
        await file.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    internal static byte[] Build(long size, string? backingFile, bool encrypted = false)
    {
        Validate(size, backingFile);
        // qemu-img rounds the size up to whole sectors; "fat:" names vvfat, which is no file to record.
        long total = (size + QcowLayout.SectorSize - 1) / QcowLayout.SectorSize * QcowLayout.SectorSize;
        byte[] name = backingFile is null or "fat:" ? [] : Encoding.UTF8.GetBytes(backingFile);
        bool backed = backingFile != null;
        int clusterBits = backed ? QcowLayout.BackingClusterBits : QcowLayout.DefaultClusterBits;
        int l2Bits = backed ? QcowLayout.BackingL2Bits : QcowLayout.DefaultL2Bits;
        int headerSize = (QcowHeader.Size + name.Length + 7) & ~7;
        int shift = clusterBits + l2Bits;
        long l1 = (total + (1L << shift) - 1) >> shift;
        long l1Bytes = (l1 * 8 + QcowLayout.SectorSize - 1) / QcowLayout.SectorSize * QcowLayout.SectorSize;
        if (l1 > QcowLayout.MaxL1Entries)
            throw new BlockException(Errno.EINVAL, "Image too large");
        byte[] image = new byte[headerSize + l1Bytes];
        new QcowHeader
        {
            Magic = QcowLayout.Magic,
            Version = QcowLayout.Version,
            BackingFileOffset = name.Length > 0 ? (ulong)QcowHeader.Size : 0,
            BackingFileSize = (uint)name.Length,
            DiskSize = (ulong)total,
            ClusterBits = (byte)clusterBits,
            L2Bits = (byte)l2Bits,
            CryptMethod = encrypted ? QcowLayout.CryptAes : QcowLayout.CryptNone,
            L1TableOffset = (ulong)headerSize,
        }.Write(image);
        name.CopyTo(image, QcowHeader.Size);
        return image;
    }
}
