using SharpBlock.Errors;
using SharpBlock.Platform;

namespace SharpBlock.Drivers.Protocol.File;

/// <summary>
/// Image locking compatible with QEMU 2.10+: open-file-description locks on single bytes. Holding a
/// permission takes a shared lock on byte 100+bit; refusing to share one takes a shared lock on byte
/// 200+bit. A conflict is found by testing for a write lock on the opposite byte. Because qemu-img,
/// qemu-io and qemu-nbd use the same bytes, neither side can open an image the other is writing.
/// </summary>
internal static class FileLocks
{
    private const long PermBase = 100;
    private const long SharedBase = 200;

    [Flags]
    public enum Perm
    {
        None = 0,
        ConsistentRead = 1,
        Write = 2,
        WriteUnchanged = 4,
        Resize = 8,
        All = 15,
    }

    private static readonly string[] Names = ["consistent read", "write", "write unchanged", "resize"];

    /// <summary>Takes the locks for perms/shared and checks nobody else conflicts. Throws <see cref="ImageLockException"/> (EAGAIN) on conflict.</summary>
    public static void Acquire(nint fd, string path, Perm perms, Perm shared)
    {
        for (int i = 0; i < 4; i++)
        {
            var bit = (Perm)(1 << i);
            if ((perms & bit) != 0 && !SetLock(fd, PermBase + i, LibC.F_RDLCK))
                throw Conflict(path, false, i);
            if ((shared & bit) == 0 && !SetLock(fd, SharedBase + i, LibC.F_RDLCK))
                throw Conflict(path, true, i);
        }

        for (int i = 0; i < 4; i++)
        {
            var bit = (Perm)(1 << i);
            if ((perms & bit) != 0 && IsLockedByOther(fd, SharedBase + i))
                throw Conflict(path, false, i);
            if ((shared & bit) == 0 && IsLockedByOther(fd, PermBase + i))
                throw Conflict(path, true, i);
        }
    }

    /// <summary>Drops every lock byte this descriptor holds (before a reopen takes new ones on another).</summary>
    public static void ReleaseAll(nint fd)
    {
        var lk = new LibC.Flock { Type = LibC.F_UNLCK, Whence = 0, Start = PermBase, Len = SharedBase + 8 - PermBase };
        LibC.FcntlLock(fd, LibC.F_OFD_SETLK, ref lk);
    }

    private static ImageLockException Conflict(string path, bool shared, int bit) =>
        new(path, shared ? $"Failed to get shared \"{Names[bit]}\" lock" : $"Failed to get \"{Names[bit]}\" lock");

    /// <summary>Returns false only on a lock conflict; a file system without OFD locks is let through, as QEMU does.</summary>
    private static bool SetLock(nint fd, long start, short type)
    {
        var lk = new LibC.Flock { Type = type, Whence = 0, Start = start, Len = 1 };
        if (LibC.FcntlLock(fd, LibC.F_OFD_SETLK, ref lk) == 0)
            return true;
        int e = LibC.LastErrno;
        return e != (int)Errno.EAGAIN && e != (int)Errno.EACCES;
    }

    private static bool IsLockedByOther(nint fd, long start)
    {
        var lk = new LibC.Flock { Type = LibC.F_WRLCK, Whence = 0, Start = start, Len = 1 };
        if (LibC.FcntlLock(fd, LibC.F_OFD_GETLK, ref lk) != 0)
            return false;
        return lk.Type != LibC.F_UNLCK;
    }
}
