using System.Globalization;
using System.Text;
using SharpBlock.Drivers.Creation;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Io;

namespace SharpBlock.Drivers.Format.Cow;

/// <summary>
/// Creates cow images: the header (with the backing file's name and modification time, as UML records
/// them), an empty sector bitmap; the data area is left to grow as sectors are written.
/// </summary>
public static class CowCreator
{
    public static void Validate(long size, string? backingFile)
    {
        if (size < 0)
            throw new BlockException(Errno.EINVAL, "Image size must be non-negative");
        if ((ulong)size > CowLayout.MaxDiskSize)
            throw new BlockException(Errno.EFBIG, string.Create(CultureInfo.InvariantCulture, $"cow size {size} is larger than the supported 0x{CowLayout.MaxDiskSize:x}"));
        if (backingFile != null && Encoding.UTF8.GetByteCount(backingFile) >= CowHeader.BackingFileLength)
            throw new BlockException(Errno.EINVAL, "Backing file name too long");
    }

    public static async ValueTask CreateAsync(string path, long size, string? backingFile, CancellationToken cancellationToken = default)
    {
        int mtime = 0;
        if (backingFile != null)
        {
            var at = new FileInfo(BackingFiles.Resolve(path, backingFile));
            if (at.Exists)
                mtime = (int)new DateTimeOffset(at.LastWriteTimeUtc).ToUnixTimeSeconds();
        }

        byte[] image = Build(size, backingFile, mtime);
        using var fs = ImageFiles.Create(path);
        await fs.WriteAsync(image, cancellationToken).ConfigureAwait(false);
        await fs.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    public static async ValueTask CreateAsync(BlockNode file, long size, string? backingFile, CancellationToken cancellationToken = default)
    {
        byte[] image = Build(size, backingFile, 0);
        await file.WriteAsync(0, image, RequestFlags.None, cancellationToken).ConfigureAwait(false);
        await file.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    internal static byte[] Build(long size, string? backingFile, int mtime)
    {
        Validate(size, backingFile);
        long total = size / CowLayout.SectorSize * CowLayout.SectorSize;
        byte[] image = new byte[CowHeader.Size + CowLayout.BitmapBytes(total)];
        new CowHeader
        {
            Magic = CowLayout.Magic,
            Version = CowLayout.Version,
            BackingFile = backingFile ?? "",
            Mtime = mtime,
            DiskSize = (ulong)total,
            SectorSize = CowLayout.SectorSize,
        }.Write(image);
        return image;
    }
}
