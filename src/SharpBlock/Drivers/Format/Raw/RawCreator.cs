using SharpBlock.Drivers.Creation;
using SharpBlock.Drivers.Protocol.Rbd;
using SharpBlock.Errors;
using SharpBlock.Platform;

namespace SharpBlock.Drivers.Format.Raw;

/// <summary>Creates raw images: a file of the given size, sparse unless preallocated.</summary>
public static class RawCreator
{
    public static async ValueTask CreateAsync(string path, long size, Preallocation preallocation = Preallocation.Off, CancellationToken cancellationToken = default)
    {
        if (size < 0)
            throw new BlockException(Errno.EINVAL, "Image size must be non-negative");
        if (preallocation == Preallocation.Metadata)
            throw new BlockException(Errno.EINVAL, "Unsupported preallocation mode 'metadata'");
        if (RbdFilename.Parse(path) is { Rbd: { } rbd })
        {
            // A raw image on rbd is the rbd image itself; librbd allocates its objects as they are written.
            if (preallocation != Preallocation.Off)
                throw new BlockException(Errno.EINVAL, "rbd images are created without preallocation");
            await RbdImage.CreateAsync(rbd, null, size).ConfigureAwait(false);
            return;
        }

        if (DeviceLength(path) is { } deviceLength)
        {
            // A device is "created" by using it as it is: it cannot grow, and truncating it means nothing.
            if (deviceLength < size)
                throw new BlockException(Errno.EINVAL, "Cannot grow device files");
            return;
        }

        using var fs = ImageFiles.Create(path);
        fs.SetLength(size);
        if (size > 0 && preallocation == Preallocation.Falloc)
        {
            if (LibC.FAllocate(fs.SafeFileHandle.DangerousGetHandle(), 0, 0, size) != 0)
                throw new BlockException((Errno)LibC.LastErrno, $"Could not preallocate '{path}'");
        }
        else if (size > 0 && preallocation == Preallocation.Full)
        {
            byte[] zeros = new byte[1 << 20];
            for (long o = 0; o < size; o += zeros.Length)
                await RandomAccess.WriteAsync(fs.SafeFileHandle, zeros.AsMemory(0, (int)Math.Min(zeros.Length, size - o)), o, cancellationToken).ConfigureAwait(false);
        }

        await fs.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The size of an existing block or character device at <paramref name="path"/>; null for anything else.</summary>
    private static long? DeviceLength(string path)
    {
        int fd = LibC.Open(path, LibC.O_RDONLY | LibC.O_CLOEXEC, 0);
        if (fd < 0)
            return null;
        using var handle = new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true);
        if (LibC.FStat(fd, out var st) != 0)
            return null;
        uint type = LibC.ModeOf(st) & LibC.S_IFMT;
        if (type is LibC.S_IFREG or LibC.S_IFDIR)
            return null;
        long end = LibC.LSeek(fd, 0, LibC.SEEK_END);
        return end < 0 ? 0 : end;
    }
}
