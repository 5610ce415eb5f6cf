using System.Diagnostics;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Qcow2;

/// <summary>
/// Crash safety for real: a `sharpblock img bench -w` process allocating clusters is killed with SIGKILL at
/// random moments, over and over on the same image. After every kill qemu-img check must find no corruption
/// (leaked clusters are allowed), and data written and flushed before the writer started must be intact.
/// </summary>
public class KillDuringWritesTests
{
    /// <param name="lazy">
    /// With lazy refcounts a killed writer may leave refcounts behind the tables; the dirty bit says so, and
    /// our read-write open must rebuild them before qemu-img looks.
    /// </param>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Killing_the_writer_at_random_moments_never_corrupts_the_image(bool lazy)
    {
        using var dir = new TempDir();
        string img = dir.File("crash.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096,lazy_refcounts=" + (lazy ? "on" : "off"), img, "64G")).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 1M", img)).Ok();
        var rng = new Random(2026);
        int killedMidway = 0;
        int behind = 0;
        for (int round = 0; round < 12; round++)
        {
            // Each round writes its own 4 GiB region of a 64 GiB disk with a different step, so every round
            // allocates fresh clusters and tables all the way to its kill (a small disk is full after one
            // round, and later rounds would only overwrite).
            var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var arg in new[] { Tools.SharpBlockDll, "img", "bench", "-w", "-c", "400000", "-d", "32", "-s", "4k",
                         "-S", (4096 * (1 + round % 3)).ToString(System.Globalization.CultureInfo.InvariantCulture),
                         "-o", ((long)(1 + round) << 32).ToString(System.Globalization.CultureInfo.InvariantCulture), "--pattern=" + (0x20 + round),
                         // A tiny L2 cache: tables are written back (evicted) all the time, not only at the end.
                         "--image-opts", $"driver=qcow2,file.driver=file,file.filename={img},l2-cache-size=8192" })
                psi.ArgumentList.Add(arg);
            long sizeBefore = new FileInfo(img).Length;
            using var p = Process.Start(psi)!;
            // Kill only once the writer is allocating (the image has grown), so no kill lands before the
            // image is even open and the round tests nothing; then at a random moment of its writing.
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
            while (!p.HasExited && new FileInfo(img).Length <= sizeBefore && DateTime.UtcNow < deadline)
                await Task.Delay(5);
            Assert.True(new FileInfo(img).Length > sizeBefore, $"round {round}: the writer never grew the image");
            await Task.Delay(rng.Next(0, 600));
            if (!p.HasExited)
            {
                p.Kill();
                killedMidway++;
            }

            await p.WaitForExitAsync();
            if (lazy)
            {
                // Refcounts behind the tables are expected here (that is the point of the mode), and the
                // dirty bit must say so; our read-write open rebuilds them.
                var before = await Tools.RunAsync("qemu-img", "check", img);
                if (before.ExitCode == 2)
                {
                    behind++;
                    Assert.Contains("\"dirty-flag\": true", (await Tools.RunAsync("qemu-img", "info", "--output=json", img)).Ok().Stdout, StringComparison.Ordinal);
                }

                (await Tools.RunAsync("sharpblock", "img", "check", "-r", "all", img)).Ok();
            }

            var check = await Tools.RunAsync("qemu-img", "check", "--output=json", img);
            // 0: clean, 3: leaked clusters only. 2 would be a corruption.
            Assert.True(check.ExitCode is 0 or 3, $"round {round}: qemu-img check exit {check.ExitCode}\n{check.Stdout}{check.Stderr}");
        }

        Console.WriteLine($"kill-during-writes (lazy={lazy}): {killedMidway} of 12 kills hit the writer mid-write");
        Assert.True(killedMidway >= 9, $"the writer should mostly be killed while writing, was {killedMidway} of 12");
        if (lazy)
            Assert.True(behind > 0, "lazy refcounts never left a refcount behind its table");
        var read = (await Tools.RunAsync("qemu-io", "-f", "qcow2", "-c", "read -P 0x11 0 1M", img)).Ok();
        Assert.DoesNotContain("Pattern verification failed", read.Stdout, StringComparison.Ordinal);
    }
}
