using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.HostDevice;

/// <summary>
/// A loop device over a file, attached by losetup (the tests run as root, as CI does) and detached when
/// disposed, whatever the test did in between.
/// </summary>
internal sealed class LoopDevice : IAsyncDisposable
{
    private LoopDevice(string path, string backing)
    {
        Path = path;
        Backing = backing;
    }

    public string Path { get; private set; }

    public string Backing { get; }

    /// <summary>Attaches <paramref name="backing"/>; a logical block of 4096 gives a 4K-sector device.</summary>
    public static async Task<LoopDevice> AttachAsync(string backing, int sectorSize = 512)
    {
        string dev = (await Tools.RunAsync("losetup", "-f", "--show", "--sector-size", sectorSize.ToString(System.Globalization.CultureInfo.InvariantCulture), backing)).Ok().Stdout.Trim();
        Assert.StartsWith("/dev/loop", dev, StringComparison.Ordinal);
        return new LoopDevice(dev, backing);
    }

    /// <summary>What blockdev(8) reports for the device: --getsize64, --getss, --getpbsz.</summary>
    public async Task<long> BlockdevAsync(string query) =>
        long.Parse((await Tools.RunAsync("blockdev", query, Path)).Ok().Stdout.Trim(), System.Globalization.CultureInfo.InvariantCulture);

    public async ValueTask DisposeAsync()
    {
        if (Path.Length == 0)
            return;
        string dev = Path;
        Path = "";
        await Tools.RunAsync("losetup", "-d", dev);
    }
}
