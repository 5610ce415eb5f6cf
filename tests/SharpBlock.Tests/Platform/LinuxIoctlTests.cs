using SharpBlock.Platform;

namespace SharpBlock.Tests.Platform;

/// <summary>
/// The ioctl numbers are the kernel's ABI: each is frozen at the value linux/fs.h, linux/cdrom.h and
/// linux/fd.h give it, and the block ones also against the _IO/_IOR encoding they come from.
/// </summary>
public class LinuxIoctlTests
{
    [Fact]
    public void Block_device_requests_have_the_kernel_numbers()
    {
        Assert.Equal(0x1268u, LinuxIoctl.BLKSSZGET);
        Assert.Equal(0x1277u, LinuxIoctl.BLKDISCARD);
        Assert.Equal(0x127Bu, LinuxIoctl.BLKPBSZGET);
        Assert.Equal(0x127Fu, LinuxIoctl.BLKZEROOUT);
        Assert.Equal(0x80081272u, LinuxIoctl.BLKGETSIZE64);

        Assert.Equal(LinuxIoctl.BLKSSZGET, LinuxIoctl.Io(0x12, 104));
        Assert.Equal(LinuxIoctl.BLKDISCARD, LinuxIoctl.Io(0x12, 119));
        Assert.Equal(LinuxIoctl.BLKPBSZGET, LinuxIoctl.Io(0x12, 123));
        Assert.Equal(LinuxIoctl.BLKZEROOUT, LinuxIoctl.Io(0x12, 127));
        Assert.Equal(LinuxIoctl.BLKGETSIZE64, LinuxIoctl.Ior(0x12, 114, sizeof(ulong)));
    }

    [Fact]
    public void Removable_drive_requests_and_answers_have_the_kernel_numbers()
    {
        Assert.Equal(0x5309u, LinuxIoctl.CDROMEJECT);
        Assert.Equal(0x5319u, LinuxIoctl.CDROMCLOSETRAY);
        Assert.Equal(0x5326u, LinuxIoctl.CDROM_DRIVE_STATUS);
        Assert.Equal(0x5329u, LinuxIoctl.CDROM_LOCKDOOR);
        Assert.Equal(LinuxIoctl.FDEJECT, LinuxIoctl.Io(2, 0x5a));
        Assert.Equal(0x7fffffff, LinuxIoctl.CDSL_CURRENT);
        Assert.Equal(1, LinuxIoctl.CDS_NO_DISC);
        Assert.Equal(2, LinuxIoctl.CDS_TRAY_OPEN);
        Assert.Equal(3, LinuxIoctl.CDS_DRIVE_NOT_READY);
        Assert.Equal(4, LinuxIoctl.CDS_DISC_OK);
    }
}
