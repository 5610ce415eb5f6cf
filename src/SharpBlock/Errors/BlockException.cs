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
        Errno.EISDIR => "Is a directory",
        Errno.EINVAL => "Invalid argument",
        Errno.EFBIG => "File too large",
        Errno.ENOSPC => "No space left on device",
        Errno.EROFS => "Read-only file system",
        Errno.ERANGE => "Numerical result out of range",
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

    /// <summary>Maps an exception from the runtime's file APIs onto an errno.</summary>
    public static Errno ErrnoOf(Exception ex) => ex switch
    {
        BlockException b => b.Errno,
        FileNotFoundException or DirectoryNotFoundException => Errno.ENOENT,
        UnauthorizedAccessException => Errno.EACCES,
        // On Unix the runtime stores the raw errno in HResult.
        IOException io when io.HResult is > 0 and < 200 => (Errno)io.HResult,
        OperationCanceledException => Errno.ECANCELED,
        _ => Errno.EIO,
    };

    [DoesNotReturn]
    public static void Throw(Errno errno, string message) => throw new BlockException(errno, message);

    /// <summary>Wraps an I/O failure so its errno survives; a BlockException passes through unchanged.</summary>
    public static BlockException Wrap(Exception ex, string context) => ex as BlockException
        ?? new BlockException(ErrnoOf(ex), context + ": " + ex.Message, ex);
}
