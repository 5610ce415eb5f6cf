using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Nbd.Server;
using SharpBlock.Schema;
using SharpBlock.Testing;

namespace SharpBlock.Nbd.Tests.Server;

/// <summary>
/// Export management without QMP: the service answers with BlockExceptions in QEMU's words and an errno
/// a front can classify (ENODEV is QMP's DeviceNotFound), and its Unix socket is owner-only.
/// </summary>
public class NbdServiceTests
{
    private static SocketAddress Unix(string path) =>
        new() { Type = SocketAddressKind.Unix, Unix = new UnixSocketAddress { Path = path } };

    [Fact]
    public async Task Starts_exports_and_stops_through_the_library_alone()
    {
        using var dir = new TempDir();
        await using var graph = new BlockGraph();
        string image = dir.File("d0.raw");
        await File.WriteAllBytesAsync(image, new byte[65536]);
        var options = Drivers.ImageFormats.FileOptions(BlockdevDriver.Raw, image);
        options.Id = "d0";
        await graph.AddAsync(options);
        var service = new NbdService(graph);
        await using (service)
        {
            string socket = dir.File("nbd.sock");
            await service.StartAsync(Unix(socket));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(socket));
            await service.AddExportAsync("d0", writable: false);
            Assert.NotNull(service.Server!.FindExport("d0"));

            var again = await Assert.ThrowsAsync<BlockException>(() => service.StartAsync(Unix(socket)).AsTask());
            Assert.Equal("NBD server already running", again.Message);
            var missing = await Assert.ThrowsAsync<BlockException>(() => service.AddExportAsync("nope", false).AsTask());
            Assert.Equal((Errno.ENODEV, "Device 'nope' not found"), (missing.Errno, missing.Message));
            var twice = await Assert.ThrowsAsync<BlockException>(() => service.AddExportAsync("d0", false).AsTask());
            Assert.Equal("NBD server already exporting device 'd0'", twice.Message);

            await service.StopAsync();
            Assert.False(service.Running);
            Assert.False(File.Exists(socket));
            var stopped = await Assert.ThrowsAsync<BlockException>(() => service.AddExportAsync("d0", false).AsTask());
            Assert.Equal("NBD server not running", stopped.Message);
        }
    }
}
