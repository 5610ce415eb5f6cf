namespace SharpBlock.Errors;

/// <summary>
/// Linux errno values. One fact about a failure travels from the driver that saw it to every edge that
/// reports it: a device's rerror/werror policy, a job's on-error policy, NBD's error reply.
/// </summary>
public enum Errno
{
    None = 0,
    EPERM = 1,
    ENOENT = 2,
    EINTR = 4,
    EIO = 5,
    ENXIO = 6,
    E2BIG = 7,
    EBADF = 9,
    EAGAIN = 11,
    ENOMEM = 12,
    EACCES = 13,
    EBUSY = 16,
    EEXIST = 17,
    ENODEV = 19,
    ENOTDIR = 20,
    EISDIR = 21,
    EINVAL = 22,
    EMFILE = 24,
    ENOTTY = 25,
    EFBIG = 27,
    ENOSPC = 28,
    ESPIPE = 29,
    EROFS = 30,
    ERANGE = 34,
    ENAMETOOLONG = 36,
    ELOOP = 40,
    ENOSYS = 38,
    ENOTEMPTY = 39,
    ENODATA = 61,
    EOVERFLOW = 75,
    EOPNOTSUPP = 95,
    ECONNRESET = 104,
    ESHUTDOWN = 108,
    ETIMEDOUT = 110,
    ECONNREFUSED = 111,
    ENOMEDIUM = 123,
    EMEDIUMTYPE = 124,
    ECANCELED = 125,
}
