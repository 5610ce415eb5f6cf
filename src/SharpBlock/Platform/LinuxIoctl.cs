using System.Runtime.InteropServices;

namespace SharpBlock.Platform;

/// <summary>
/// The block-device, CD-ROM and floppy ioctls of linux/fs.h, linux/cdrom.h and linux/fd.h. x86_64 and arm64
/// share the generic _IOC encoding (dir:2 size:14 type:8 nr:8), so one set of numbers serves both; a test
/// freezes each against the encoding.
/// </summary>
internal static unsafe partial class LinuxIoctl
{
    private const int NrShift = 0;
    private const int TypeShift = 8;
    private const int SizeShift = 16;
    private const int DirShift = 30;
    private const uint DirRead = 2;

    /// <summary>_IO(type, nr): a request without an argument the kernel copies.</summary>
    public static uint Io(uint type, uint nr) => (type << TypeShift) | (nr << NrShift);

    /// <summary>_IOR(type, nr, size): the kernel writes <paramref name="size"/> bytes to the argument.</summary>
    public static uint Ior(uint type, uint nr, uint size) => (DirRead << DirShift) | (size << SizeShift) | (type << TypeShift) | (nr << NrShift);

    // linux/fs.h, block devices (type 0x12).
    public const uint BLKSSZGET = 0x1268;          // _IO(0x12,104): logical block size, int
    public const uint BLKDISCARD = 0x1277;         // _IO(0x12,119): uint64_t[2] { offset, length }
    public const uint BLKPBSZGET = 0x127B;         // _IO(0x12,123): physical block size, unsigned int
    public const uint BLKZEROOUT = 0x127F;         // _IO(0x12,127): uint64_t[2] { offset, length }
    public const uint BLKGETSIZE64 = 0x80081272;   // _IOR(0x12,114,size_t): size in bytes, uint64_t

    // linux/cdrom.h (type 0x53, 'S').
    public const uint CDROMEJECT = 0x5309;
    public const uint CDROMCLOSETRAY = 0x5319;
    public const uint CDROM_DRIVE_STATUS = 0x5326;
    public const uint CDROM_LOCKDOOR = 0x5329;

    /// <summary>CDROM_DRIVE_STATUS's slot argument for "the current disc".</summary>
    public const int CDSL_CURRENT = int.MaxValue;

    /// <summary>CDROM_DRIVE_STATUS's answers.</summary>
    public const int CDS_NO_DISC = 1;
    public const int CDS_TRAY_OPEN = 2;
    public const int CDS_DRIVE_NOT_READY = 3;
    public const int CDS_DISC_OK = 4;

    // linux/fd.h (type 2).
    public const uint FDEJECT = 0x025A;            // _IO(2,0x5a)

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static partial int IoctlPtr(nint fd, nuint request, void* arg);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static partial int IoctlInt(nint fd, nuint request, nint arg);

    /// <summary>The size of a block device in bytes, or -1 when the descriptor is none.</summary>
    public static long GetSize64(nint fd)
    {
        ulong size = 0;
        return IoctlPtr(fd, BLKGETSIZE64, &size) == 0 ? (long)size : -1;
    }

    /// <summary>A block device's logical (BLKSSZGET) or physical (BLKPBSZGET) block size, or 0 when unknown.</summary>
    public static int GetBlockSize(nint fd, uint request)
    {
        uint v = 0;
        return IoctlPtr(fd, request, &v) == 0 ? (int)v : 0;
    }

    /// <summary>BLKDISCARD or BLKZEROOUT over [offset, offset + length); 0 or an errno.</summary>
    public static int RangeRequest(nint fd, uint request, long offset, long length)
    {
        ulong* range = stackalloc ulong[2];
        range[0] = (ulong)offset;
        range[1] = (ulong)length;
        while (true)
        {
            if (IoctlPtr(fd, request, range) == 0)
                return 0;
            int e = Marshal.GetLastPInvokeError();
            if (e != (int)Errors.Errno.EINTR)
                return e;
        }
    }

    /// <summary>A request whose argument is a plain integer (CDROMEJECT, CDROM_LOCKDOOR, CDROM_DRIVE_STATUS); the result or -errno.</summary>
    public static int Value(nint fd, uint request, nint arg)
    {
        int rc = IoctlInt(fd, request, arg);
        return rc >= 0 ? rc : -Marshal.GetLastPInvokeError();
    }
}
