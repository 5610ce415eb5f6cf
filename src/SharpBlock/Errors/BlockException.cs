using System.Diagnostics.CodeAnalysis;

namespace SharpBlock.Errors;

/// <summary>A failed block operation, carrying the errno that policies and protocols derive their answer from.</summary>
public class BlockException : IOException
{
    public BlockException(Errno errno, string message, Exception? inner = null)
        : base(message, inner)
    {
        Errno = errno;
    }

    public Errno Errno { get; }

    /// <summary>The strerror() text for the errno, as QEMU appends it to messages.</summary>
    public static string Describe(Errno errno) => errno switch
    {
        Errno.EPERM => "Operation not permitted",
        Errno.ENOENT => "No such file or directory",
        Errno.EIO => "Input/output error",
        Errno.ENXIO => "No such device or address",
        Errno.EBADF => "Bad file descriptor",
        Errno.EAGAIN => "Resource temporarily unavailable",
        Errno.ENOMEM => "Cannot allocate memory",
        Errno.EACCES => "Permission denied",
        Errno.EBUSY => "Device or resource busy",
        Errno.EEXIST => "File exists",
        Errno.ENODEV => "No such device",
        Errno.ENOTDIR => "Not a directory",
        Errno.EISDIR => "Is a directory",
        Errno.EINVAL => "Invalid argument",
        Errno.EMFILE => "Too many open files",
        Errno.ENOTTY => "Inappropriate ioctl for device",
        Errno.EFBIG => "File too large",
        Errno.ENOSPC => "No space left on device",
        Errno.EROFS => "Read-only file system",
        Errno.ERANGE => "Numerical result out of range",
        Errno.ENAMETOOLONG => "File name too long",
        Errno.ELOOP => "Too many levels of symbolic links",
        Errno.ENOTEMPTY => "Directory not empty",
        Errno.ENOSYS => "Function not implemented",
        Errno.EOVERFLOW => "Value too large for defined data type",
        Errno.EOPNOTSUPP => "Operation not supported",
        Errno.ECONNRESET => "Connection reset by peer",
        Errno.ESHUTDOWN => "Cannot send after transport endpoint shutdown",
        Errno.ETIMEDOUT => "Connection timed out",
        Errno.ECONNREFUSED => "Connection refused",
        Errno.ENOMEDIUM => "No medium found",
        Errno.ECANCELED => "Operation canceled",
        _ => "Unknown error " + ((int)errno).ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    /// <summary>
    /// Maps an exception from the runtime's file APIs onto an errno: the one place where .NET's exception
    /// types become the errno (and so the strerror text) that QEMU would report. With the path that failed,
    /// two answers the runtime gets wrong are put right: it reports a directory opened as a file as EACCES,
    /// and a path that runs through a regular file as not found.
    /// </summary>
    public static Errno ErrnoOf(Exception ex, string? path = null)
    {
        var errno = ex switch
        {
            BlockException b => b.Errno,
            FileNotFoundException or DirectoryNotFoundException => Errno.ENOENT,
            PathTooLongException => Errno.ENAMETOOLONG,
            // On Unix the runtime keeps the raw errno in HResult, of the exception or of the one it wraps.
            UnauthorizedAccessException { InnerException: IOException { HResult: > 0 and < 200 } inner } => (Errno)inner.HResult,
            UnauthorizedAccessException => Errno.EACCES,
            IOException io when io.HResult is > 0 and < 200 => (Errno)io.HResult,
            OperationCanceledException => Errno.ECANCELED,
            _ => Errno.EIO,
        };
        if (path == null || ex is BlockException)
            return errno;
        if (errno == Errno.EACCES && Directory.Exists(path))
            return Errno.EISDIR;
        if (errno == Errno.ENOENT && RunsThroughFile(path))
            return Errno.ENOTDIR;
        return errno;
    }

    private static bool RunsThroughFile(string path)
    {
        for (string? dir = Path.GetDirectoryName(Path.GetFullPath(path)); !string.IsNullOrEmpty(dir); dir = Path.GetDirectoryName(dir))
        {
            if (Directory.Exists(dir))
                return false;
            if (File.Exists(dir))
                return true;
        }

        return false;
    }

    /// <summary>
    /// A failure to create or open a file, worded as QEMU words it ("Could not create 'X': No such file or
    /// directory"); <paramref name="verb"/> is "create" or "open". A BlockException passes through unchanged.
    /// </summary>
    public static BlockException ForPath(string verb, string path, Exception ex)
    {
        if (ex is BlockException b)
            return b;
        var errno = ErrnoOf(ex, path);
        return new BlockException(errno, $"Could not {verb} '{path}': {Describe(errno)}", ex);
    }

    [DoesNotReturn]
    public static void Throw(Errno errno, string message) => throw new BlockException(errno, message);

    /// <summary>Wraps an I/O failure so its errno survives; a BlockException passes through unchanged.</summary>
    public static BlockException Wrap(Exception ex, string context)
    {
        if (ex is BlockException b)
            return b;
        var errno = ErrnoOf(ex);
        return new BlockException(errno, context + ": " + Describe(errno), ex);
    }
}
