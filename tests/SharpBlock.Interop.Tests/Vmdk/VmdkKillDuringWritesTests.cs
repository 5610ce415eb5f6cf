using System.Diagnostics;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Vmdk;

/// <summary>
/// Crash safety for real: a `sharpblock img bench -w` process allocating grains (and flushing, so grain tables
/// are written back while it runs) is killed with SIGKILL at random moments, over and over on the same image.
/// After every kill qemu-img check must find no error, and data written before the writer started must be intact.
/// </summary>
public class VmdkKillDuringWritesTests
{
    [Theory]
    [InlineData("monolithicSparse")]
    [InlineData("twoGbMaxExtentSparse")]
    public async Task Killing_the_writer_at_random_moments_never_corrupts_the_image(string subformat)
    {
        using var dir = new TempDir();
        string img = dir.File("crash.vmdk");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "vmdk", "-o", "subformat=" + subformat, img, "256M")).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "vmdk", "-c", "write -P 0x11 0 1M", img)).Ok();
        var rng = new Random(2026);
        int killedMidway = 0;
        for (int round = 0; round < 10; round++)
        {
            // Each round writes a new region (fresh grains), in pieces smaller than a grain.
            var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var arg in new[] { Tools.SharpBlockDll, "img", "bench", "-w", "-f", "vmdk", "-c", "400000", "-d", "16", "-s", "4k",
                         "-S", (4096 * (5 + (round % 3))).ToString(System.Globalization.CultureInfo.InvariantCulture),
                         "-o", ((1 + round) << 20).ToString(System.Globalization.CultureInfo.InvariantCulture), "--pattern=" + (0x20 + round),
                         "--flush-interval", "64", img })
                psi.ArgumentList.Add(arg);
            using var p = Process.Start(psi)!;
            await Task.Delay(rng.Next(300, 1500));
            if (!p.HasExited)
            {
                p.Kill();
                killedMidway++;
            }

            await p.WaitForExitAsync();
            var check = await Tools.RunAsync("qemu-img", "check", img);
            Assert.True(check.ExitCode == 0, $"round {round}: qemu-img check exit {check.ExitCode}\n{check.Stdout}{check.Stderr}");
            (await Tools.RunAsync("sharpblock", "img", "check", img)).Ok();
        }

        Assert.True(killedMidway >= 5, $"the writer should mostly be killed while running, was {killedMidway} of 10");
        var read = (await Tools.RunAsync("qemu-io", "-f", "vmdk", "-r", "-c", "read -P 0x11 0 1M", img)).Ok();
        Assert.DoesNotContain("Pattern verification failed", read.Stdout, StringComparison.Ordinal);
    }
}
