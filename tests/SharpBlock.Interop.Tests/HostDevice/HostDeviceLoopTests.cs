using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.HostDevice;

/// <summary>
/// host_device on a real block device: a loop device the test attaches (it runs as root, as CI does) over a
/// file. What we read equals the file, what we write lands in it, judged by qemu-img compare.
/// </summary>
public class HostDeviceLoopTests
{
    [Fact]
    public async Task Img_reads_and_writes_a_loop_device_like_the_file_under_it()
    {
        using var dir = new TempDir();
        string backing = dir.PatternFile("dev.img", 8 << 20, seed: 11);
        string source = dir.PatternFile("src.raw", 8 << 20, seed: 12);
        string dev = (await Tools.RunAsync("losetup", "-f", "--show", backing)).Ok().Stdout.Trim();
        try
        {
            Assert.StartsWith("/dev/loop", dev, StringComparison.Ordinal);
            Assert.Equal("Images are identical.\n", (await Tools.RunAsync("sharpblock", "img", "compare", "-f", "raw", "-F", "raw", dev, backing)).Ok().Stdout);
            string info = (await Tools.RunAsync("sharpblock", "img", "info", "-f", "raw", dev)).Ok().Stdout;
            Assert.Contains("virtual size: 8 MiB (8388608 bytes)\n", info, StringComparison.Ordinal);

            (await Tools.RunAsync("sharpblock", "img", "convert", "-n", "-f", "raw", "-O", "raw", source, dev)).Ok();
            (await Tools.RunAsync("losetup", "-d", dev)).Ok();
            dev = "";
            var verdict = await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "raw", source, backing);
            Assert.Equal("Images are identical.\n", verdict.Ok().Stdout);
        }
        finally
        {
            if (dev.Length > 0)
                await Tools.RunAsync("losetup", "-d", dev);
        }
    }
}
