// A tour of the SharpBlock package: create a qcow2 and write to it, open it again with its format probed and
// read it back as a Stream, then convert it to vmdk and vhdx with progress and cancellation.
// Usage: ImageTour DIRECTORY   (writes tour.qcow2, tour.vmdk and tour.vhdx there)
using System.Runtime.Versioning;
using System.Security.Cryptography;
using SharpBlock.Images;

// SharpBlock runs on Linux only; saying so once here keeps the platform analyser (CA1416) quiet.
[assembly: SupportedOSPlatform("linux")]

if (args.Length != 1)
{
    Console.Error.WriteLine("usage: ImageTour DIRECTORY");
    return 2;
}

string dir = args[0];
Directory.CreateDirectory(dir);
string qcow2 = Path.Combine(dir, "tour.qcow2");
const long size = 64L << 20;

// 1. Create a qcow2 and write to it: a 1 MiB pattern at 4 MiB and a sector at the very end.
var pattern = new byte[1 << 20];
for (int i = 0; i < pattern.Length; i++)
    pattern[i] = (byte)(i * 7 % 251);
await using (var disk = await DiskImage.CreateAsync(qcow2, "qcow2", size, new Dictionary<string, string> { ["cluster_size"] = "65536" }))
{
    var stream = disk.AsStream();
    stream.Position = 4 << 20;
    await stream.WriteAsync(pattern);
    await disk.WriteAsync(size - 512, pattern.AsMemory(0, 512));
    await disk.FlushAsync();
}

Console.WriteLine($"created {qcow2}");

// 2. Open it again without naming the format, and read it back through a Stream.
await using (var image = await DiskImage.OpenAsync(qcow2))
{
    Console.WriteLine($"opened {image.Path}: format {image.Format}, {image.Length} bytes");
    var stream = image.AsStream();
    var back = new byte[pattern.Length];
    stream.Seek(4 << 20, SeekOrigin.Begin);
    await stream.ReadExactlyAsync(back);
    if (!back.AsSpan().SequenceEqual(pattern))
    {
        Console.Error.WriteLine("read back differs from what was written");
        return 1;
    }

    stream.Position = 0;
    Console.WriteLine($"sha256 {Convert.ToHexStringLower(await SHA256.HashDataAsync(stream))}");
}

// 3. Convert to vmdk and vhdx, reporting progress, cancellable with Ctrl-C.
using var cts = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cts.Cancel();
};
await using (var source = await DiskImage.OpenAsync(qcow2))
{
    foreach (var format in new[] { "vmdk", "vhdx" })
    {
        string target = Path.Combine(dir, "tour." + format);
        double last = -1;
        var progress = new SyncProgress(p =>
        {
            // Progress is reported from the copy's workers: keep the handler short and thread-safe.
            if (p.Percent >= last + 25 || (p.Done == p.Total && last < 100))
            {
                last = p.Percent;
                Console.WriteLine($"  {format}: {p.Percent:F0}%");
            }
        });
        await DiskImageConverter.ConvertAsync(source, target, format, progress: progress, cancellationToken: cts.Token);
        Console.WriteLine($"converted to {target}");
    }
}

return 0;

/// <summary>Reports on the calling worker at once (Progress&lt;T&gt; would post to the thread pool, out of order).</summary>
internal sealed class SyncProgress(Action<ConvertProgress> handler) : IProgress<ConvertProgress>
{
    private readonly Lock _gate = new();

    public void Report(ConvertProgress value)
    {
        lock (_gate)
            handler(value);
    }
}
