using SharpBlock.Images;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Library;

/// <summary>
/// The library's front door (<see cref="DiskImage"/>, <see cref="DiskImageConverter"/>) as a program uses it,
/// judged by qemu-img: what we create passes its check and holds what was written, what it creates reads back
/// through our stream, and a conversion reports progress and stops when cancelled.
/// </summary>
public sealed class DiskImageTests
{
    private const int Size = 8 << 20;

    [Fact]
    public async Task ProbedImageReadsAsStreamLikeQemuImgConvertsIt()
    {
        using var dir = new TempDir();
        string raw = dir.PatternFile("src.raw", Size, seed: 3);
        string vmdk = dir.File("src.vmdk");
        (await Tools.RunAsync("qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, vmdk)).Ok();

        await using var image = await DiskImage.OpenAsync(vmdk);
        Assert.Equal("vmdk", image.Format);
        Assert.True(image.ReadOnly);
        Assert.Equal(Size, image.Length);
        var stream = image.AsStream();
        stream.Seek(-4096, SeekOrigin.End);
        var tail = new byte[8192];
        int n = await stream.ReadAsync(tail);
        Assert.Equal(4096, n);
        stream.Position = 0;
        using var copy = new MemoryStream();
        await stream.CopyToAsync(copy);
        Assert.Equal(await File.ReadAllBytesAsync(raw), copy.ToArray());
        Assert.Equal(copy.ToArray().AsSpan(Size - 4096).ToArray(), tail.AsSpan(0, 4096).ToArray());
    }

    [Fact]
    public async Task CreatedQcow2PassesQemuImgCheckAndHoldsTheWrites()
    {
        using var dir = new TempDir();
        string path = dir.File("new.qcow2");
        var expected = new byte[Size];
        await using (var image = await DiskImage.CreateAsync(path, "qcow2", Size, new Dictionary<string, string> { ["cluster_size"] = "16384" }))
        {
            var stream = image.AsStream();
            var data = new byte[100_000];
            new Random(7).NextBytes(data);
            stream.Position = 1_000_003;
            await stream.WriteAsync(data);
            data.CopyTo(expected, 1_000_003);
            await image.WriteAsync(Size - 512, data.AsMemory(0, 512));
            data.AsSpan(0, 512).CopyTo(expected.AsSpan(Size - 512));
            await image.FlushAsync();
        }

        (await Tools.RunAsync("qemu-img", "check", path)).Ok();
        var info = (await Tools.RunAsync("qemu-img", "info", path)).Ok().Stdout;
        Assert.Contains("cluster_size: 16384", info, StringComparison.Ordinal);
        string model = dir.File("model.raw");
        await File.WriteAllBytesAsync(model, expected);
        (await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "qcow2", model, path)).Ok();
    }

    [Fact]
    public async Task ConvertReportsProgressToTheEndAndTheTargetEqualsTheSource()
    {
        using var dir = new TempDir();
        string raw = dir.PatternFile("src.raw", Size, seed: 5);
        // A hole in the middle: converted as zeros, and still counted in the progress.
        await using (var f = File.OpenWrite(raw))
        {
            f.Position = Size / 2;
            await f.WriteAsync(new byte[1 << 20]);
        }

        string target = dir.File("out.qcow2");
        var reports = new List<ConvertProgress>();
        await using (var source = await DiskImage.OpenAsync(raw, "raw"))
            await DiskImageConverter.ConvertAsync(source, target, "qcow2", progress: new Collect(reports));

        Assert.NotEmpty(reports);
        Assert.Equal(new ConvertProgress(Size, Size), reports[^1]);
        Assert.All(reports, r => Assert.Equal(Size, r.Total));
        (await Tools.RunAsync("qemu-img", "check", target)).Ok();
        (await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "qcow2", raw, target)).Ok();
    }

    [Fact]
    public async Task CancelledConvertStopsWithCancellationAndLeavesAValidImage()
    {
        using var dir = new TempDir();
        string raw = dir.PatternFile("src.raw", Size, seed: 9);
        string target = dir.File("out.qcow2");
        using var cts = new CancellationTokenSource();
        var cancelOnFirst = new CancelOnFirst(cts);
        await using (var source = await DiskImage.OpenAsync(raw, "raw"))
        {
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
                DiskImageConverter.ConvertAsync(source, target, "qcow2", progress: cancelOnFirst, streams: 1, cancellationToken: cts.Token));
        }

        Assert.True(cancelOnFirst.Calls >= 1);
        (await Tools.RunAsync("qemu-img", "check", target)).Ok();
        // Stopped early: the 8 MiB of data were not all copied.
        var r = await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "qcow2", raw, target);
        Assert.Equal(1, r.ExitCode);
    }

    [Fact]
    public async Task ConvertOntoItsOwnSourceIsRefusedBeforeTouchingIt()
    {
        using var dir = new TempDir();
        string raw = dir.PatternFile("src.raw", Size, seed: 11);
        var before = await File.ReadAllBytesAsync(raw);
        await using var source = await DiskImage.OpenAsync(raw, "raw");
        await Assert.ThrowsAsync<ArgumentException>(() => DiskImageConverter.ConvertAsync(source, raw, "qcow2"));
        Assert.Equal(before, await File.ReadAllBytesAsync(raw));
    }

    /// <summary>Synchronous, unlike Progress&lt;T&gt;, so the assertions see every report.</summary>
    private sealed class Collect(List<ConvertProgress> into) : IProgress<ConvertProgress>
    {
        public void Report(ConvertProgress value)
        {
            lock (into)
                into.Add(value);
        }
    }

    private sealed class CancelOnFirst(CancellationTokenSource cts) : IProgress<ConvertProgress>
    {
        public int Calls;

        public void Report(ConvertProgress value)
        {
            Interlocked.Increment(ref Calls);
            cts.Cancel();
        }
    }
}
