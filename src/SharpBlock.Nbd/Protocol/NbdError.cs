using SharpBlock.Errors;

namespace SharpBlock.Nbd.Protocol;

/// <summary>
/// The errno values NBD carries on the wire. The protocol fixes a small set with Linux numbering; every
/// other error is sent as the nearest of them so any client can understand it.
/// </summary>
public static class NbdError
{
    public const uint EPERM = 1;
    public const uint EIO = 5;
    public const uint ENOMEM = 12;
    public const uint EINVAL = 22;
    public const uint ENOSPC = 28;
    public const uint EOVERFLOW = 75;
    public const uint ENOTSUP = 95;
    public const uint ESHUTDOWN = 108;

    /// <summary>What a server sends for a failure of the block layer.</summary>
    public static uint FromErrno(Errno errno) => errno switch
    {
        Errno.EPERM or Errno.EROFS or Errno.EACCES => EPERM,
        Errno.ENOMEM => ENOMEM,
        Errno.EINVAL or Errno.ERANGE => EINVAL,
        Errno.ENOSPC or Errno.EFBIG => ENOSPC,
        Errno.EOVERFLOW => EOVERFLOW,
        Errno.EOPNOTSUPP or Errno.ENOSYS => ENOTSUP,
        Errno.ESHUTDOWN => ESHUTDOWN,
        _ => EIO,
    };

    /// <summary>What a client makes of an error the server sent; unknown values are I/O errors.</summary>
    public static Errno ToErrno(uint error) => error switch
    {
        EPERM => Errno.EPERM,
        ENOMEM => Errno.ENOMEM,
        EINVAL => Errno.EINVAL,
        ENOSPC => Errno.ENOSPC,
        EOVERFLOW => Errno.EOVERFLOW,
        ENOTSUP => Errno.EOPNOTSUPP,
        ESHUTDOWN => Errno.ESHUTDOWN,
        _ => Errno.EIO,
    };
}
