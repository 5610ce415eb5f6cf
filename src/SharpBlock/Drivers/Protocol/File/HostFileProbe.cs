using SharpBlock.Platform;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Protocol.File;

/// <summary>
/// Which of the file protocols a bare path names, as qemu-img picks one: a block or character device is
/// host_device, a CD-ROM drive under the /dev/cdrom name host_cdrom, anything else 'file' (which then
/// refuses what is no regular file).
/// </summary>
internal static class HostFileProbe
{
    public static string DriverFor(string path)
    {
        if (LibC.StatPath(path, out var st) != 0)
            return "file";
        uint type = LibC.ModeOf(st) & LibC.S_IFMT;
        if (type is not (LibC.S_IFBLK or LibC.S_IFCHR))
            return "file";
        // QEMU scores host_device only 50 for /dev/cdrom*, so a drive that answers the CD-ROM status
        // ioctl there is host_cdrom; any other device name keeps host_device, which wins QEMU's ties.
        return path.StartsWith("/dev/cdrom", StringComparison.Ordinal) && IsCdromDrive(path) ? "host_cdrom" : "host_device";
    }

    /// <summary>The protocol node's options for a path given without a driver.</summary>
    public static BlockdevOptions Options(string path) => ProtocolOptions(DriverFor(path), path)!;

    /// <summary>The options of one of the file protocols by its name, or null when the name is none of them.</summary>
    public static BlockdevOptions? ProtocolOptions(string driver, string path)
    {
        var file = new BlockdevOptionsFile { Filename = path };
        return driver switch
        {
            "file" => new BlockdevOptions { Driver = BlockdevDriver.File, File = file },
            "host_device" => new BlockdevOptions { Driver = BlockdevDriver.HostDevice, HostDevice = file },
            "host_cdrom" => new BlockdevOptions { Driver = BlockdevDriver.HostCdrom, HostCdrom = file },
            "host_floppy" => new BlockdevOptions { Driver = BlockdevDriver.HostFloppy, HostFloppy = file },
            _ => null,
        };
    }

    private static bool IsCdromDrive(string path)
    {
        int fd = LibC.Open(path, LibC.O_RDONLY | LibC.O_NONBLOCK | LibC.O_CLOEXEC, 0);
        if (fd < 0)
            return false;
        try
        {
            return LinuxIoctl.Value(fd, LinuxIoctl.CDROM_DRIVE_STATUS, LinuxIoctl.CDSL_CURRENT) >= 0;
        }
        finally
        {
            _ = LibC.Close(fd);
        }
    }
}
