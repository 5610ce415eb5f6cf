using System.Runtime.InteropServices;

namespace SharpBlock.Platform;

/// <summary>
/// The few Linux calls the runtime does not expose: O_DIRECT opens, fdatasync, fallocate modes,
/// SEEK_DATA/SEEK_HOLE and open-file-description locks.
/// </summary>
internal static partial class LibC
{
    public const int O_RDONLY = 0;
    public const int O_RDWR = 2;
    public const int O_CREAT = 0x40;
    public const int O_EXCL = 0x80;
    public const int O_TRUNC = 0x200;
    public const int O_NONBLOCK = 0x800;
    /// <summary>O_DIRECT is one of the few open flags whose value differs: arm64's 0x4000 is O_DIRECTORY.</summary>
    public static readonly int O_DIRECT = RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? 0x10000 : 0x4000;
    public const int O_CLOEXEC = 0x80000;

    public const int SEEK_END = 2;
    public const int SEEK_DATA = 3;
    public const int SEEK_HOLE = 4;

    public const int FALLOC_FL_KEEP_SIZE = 0x01;
    public const int FALLOC_FL_PUNCH_HOLE = 0x02;
    public const int FALLOC_FL_ZERO_RANGE = 0x10;

    public const int F_OFD_GETLK = 36;
    public const int F_OFD_SETLK = 37;
    public const short F_RDLCK = 0;
    public const short F_WRLCK = 1;
    public const short F_UNLCK = 2;

    public const uint S_IFMT = 0xF000;
    public const uint S_IFBLK = 0x6000;
    public const uint S_IFCHR = 0x2000;
    public const uint S_IFREG = 0x8000;
    public const uint S_IFDIR = 0x4000;

    /// <summary>struct flock as laid out on 64-bit Linux.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Flock
    {
        public short Type;
        public short Whence;
        public long Start;
        public long Len;
        public int Pid;
    }

    /// <summary>The fields of struct stat we read; st_size and st_blocks sit at the same offsets on x86_64 and arm64.</summary>
    [StructLayout(LayoutKind.Explicit, Size = 144)]
    public struct Stat
    {
        [FieldOffset(24)] public uint ModeX64;
        [FieldOffset(16)] public uint ModeArm64;
        [FieldOffset(48)] public long Size;
        [FieldOffset(64)] public long Blocks;
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "fdatasync", SetLastError = true)]
    public static partial int FDataSync(nint fd);

    [LibraryImport("libc", EntryPoint = "fallocate", SetLastError = true)]
    public static partial int FAllocate(nint fd, int mode, long offset, long len);

    [LibraryImport("libc", EntryPoint = "lseek", SetLastError = true)]
    public static partial long LSeek(nint fd, long offset, int whence);

    [LibraryImport("libc", EntryPoint = "ftruncate", SetLastError = true)]
    public static partial int FTruncate(nint fd, long length);

    [LibraryImport("libc", EntryPoint = "fstat", SetLastError = true)]
    public static partial int FStat(nint fd, out Stat stat);

    [LibraryImport("libc", EntryPoint = "stat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int StatPath(string path, out Stat stat);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(nint fd);

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    public static partial int FcntlLock(nint fd, int cmd, ref Flock lk);

    public static uint ModeOf(in Stat st) =>
        RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? st.ModeArm64 : st.ModeX64;

    public static int LastErrno => Marshal.GetLastPInvokeError();
}
