using System.Text.Json;
using SharpBlock.Drivers.Protocol.File;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.HostDevice;

/// <summary>
/// host_cdrom and host_floppy over the generic path, on loop devices (this machine has no CD-ROM or floppy
/// drive, so the drive's own tray, door and disc status are not exercised). QEMU 7.2 opens host_cdrom on a
/// loop device read-write with its size, but finds no disc there (the CD-ROM status ioctl fails), so every
/// request fails with "No medium found"; host_floppy is ours alone (QEMU 7.2 dropped it) and reads the device
/// as a floppy drive with a disk in it would.
/// </summary>
public class RemovableDriveTests
{
    private const int MiB = 1 << 20;

    [Fact]
    public async Task Host_cdrom_on_a_loop_device_has_its_size_and_no_medium_as_in_qemu()
    {
        using var dir = new TempDir();
        await using var loop = await LoopDevice.AttachAsync(dir.PatternFile("cd.img", 8 * MiB, seed: 4), 4096);
        string opts = $"driver=host_cdrom,filename={loop.Path}";
        Assert.Equal((await Tools.RunAsync("qemu-img", "info", "--image-opts", opts)).Ok().Stdout, (await Tools.RunAsync("sharpblock", "img", "info", "--image-opts", opts)).Ok().Stdout);
        string qemu = (await Tools.RunAsync("qemu-io", "--image-opts", opts, "-c", "read 0 4k")).Stdout;
        Assert.Equal("read failed: No medium found\n", qemu);

        await using var graph = new BlockGraph();
        var node = Assert.IsType<FileNode>(await graph.AddAsync(HostDeviceTests.Options(BlockdevDriver.HostCdrom, loop.Path)));
        Assert.Equal("host_cdrom", node.DriverName);
        Assert.False(node.ReadOnly);
        Assert.True(node.IsRemovable);
        Assert.Equal(8 * MiB, node.Length);
        Assert.Equal(4096, node.LogicalBlockSize);
        Assert.False(node.MediumInserted);
        Assert.Null(node.HostTrayOpen);
        var ex = await Assert.ThrowsAsync<BlockException>(async () => await node.ReadAsync(0, new byte[4096]));
        Assert.Equal(Errno.ENOMEDIUM, ex.Errno);
        Assert.Equal("read failed: " + ex.Message + "\n", qemu);
        Assert.Equal(Errno.ENOMEDIUM, (await Assert.ThrowsAsync<BlockException>(async () => await node.WriteAsync(0, new byte[4096]))).Errno);
        // A loop device is no CD-ROM drive: the kernel refuses its tray and door ioctls (EINVAL from loop).
        Assert.NotEqual(Errno.None, node.EjectHostMedium(eject: true));
        Assert.NotEqual(Errno.None, node.LockHostMedium(locked: true));
    }

    [Fact]
    public async Task Host_floppy_on_a_loop_device_reads_and_writes_the_file()
    {
        using var dir = new TempDir();
        string backing = dir.PatternFile("fd.img", 1440 << 10, seed: 6);
        byte[] expected = File.ReadAllBytes(backing);
        await using var loop = await LoopDevice.AttachAsync(backing);
        await using (var graph = new BlockGraph())
        {
            var node = Assert.IsType<FileNode>(await graph.AddAsync(HostDeviceTests.Options(BlockdevDriver.HostFloppy, loop.Path)));
            Assert.Equal("host_floppy", node.DriverName);
            Assert.True(node.IsRemovable);
            Assert.True(node.MediumInserted);
            Assert.Equal(expected.Length, node.Length);
            byte[] got = new byte[expected.Length];
            await node.ReadAsync(0, got);
            Assert.Equal(expected, got);

            byte[] sector = new byte[512];
            new Random(8).NextBytes(sector);
            sector.CopyTo(expected, 4096);
            await node.WriteAsync(4096, sector);
            await node.FlushAsync();
            Assert.NotEqual(Errno.None, node.EjectHostMedium(eject: true));
        }

        Assert.Equal("Images are identical.\n", (await Tools.RunAsync("sharpblock", "img", "compare", "-f", "raw", "-F", "raw", loop.Path, backing)).Ok().Stdout);
        await loop.DisposeAsync();
        Assert.Equal(expected, File.ReadAllBytes(backing));
    }

    [Theory]
    [InlineData("host_cdrom")]
    [InlineData("host_floppy")]
    public async Task Eject_of_a_device_on_a_drive_that_cannot_eject_still_removes_the_medium(string driver)
    {
        using var dir = new TempDir();
        await using var loop = await LoopDevice.AttachAsync(dir.PatternFile("m.img", MiB, seed: 12));
        await using var h = await QmpHarness.StartAsync();
        await h.AddRawAsync("d0", loop.Path, fileJson: $"{{\"driver\": \"{driver}\", \"filename\": {JsonSerializer.Serialize(loop.Path)}}}");
        var info = await h.QueryDeviceAsync("d0");
        Assert.True(info.GetProperty("removable").GetBoolean());
        Assert.False(info.GetProperty("tray_open").GetBoolean());
        Assert.Equal(driver, h.Device("d0").Root!.File!.DriverName);

        // The drive refuses CDROMEJECT / FDEJECT (a loop device is neither); as in QEMU that is no QMP error.
        await h.Client.ReturnAsync("eject", "{\"device\": \"d0\"}");
        var moved = await h.Client.WaitEventAsync("DEVICE_TRAY_MOVED");
        Assert.True(moved.GetProperty("data").GetProperty("tray-open").GetBoolean());
        info = await h.QueryDeviceAsync("d0");
        Assert.True(info.GetProperty("tray_open").GetBoolean());
        Assert.False(info.TryGetProperty("inserted", out _));
    }
}
