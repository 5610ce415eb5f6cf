using System.Diagnostics;
using System.Globalization;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Vdi;

/// <summary>
/// Crash safety for real: a `sharpblock img bench -w` process allocating new blocks and flushing often is
/// killed with SIGKILL at random moments, over and over on the same image. After every kill qemu-img must
/// still open the image (for vdi, qemu-img check must find it clean), and data written before the writer
/// started must be intact.
/// </summary>
public class KillDuringWritesVdiVpcTests
{
    [Theory]
    [InlineData("vdi")]
    [InlineData("vpc")]
    public async Task Killing_the_writer_at_random_moments_never_corrupts_the_image(string format)
    {
        using var dir = new TempDir();
        string img = dir.File("crash." + format);
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", format, img, "256M")).Ok();
        (await ImageInteropChecks.QemuIoAsync(format, img, "write -P 0x11 0 1M")).Ok();
        var rng = new Random(2026);
        int killedMidway = 0;
        for (int round = 0; round < 10; round++)
        {
            // Each round writes a new region (fresh blocks) with a different step, flushing every 16 requests.
            var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var arg in new[] { Tools.SharpBlockDll, "img", "bench", "-w", "-f", format, "-c", "400000", "-d", "16", "-s", "4k",
                         "-S", (65536 * (1 + round % 3)).ToString(CultureInfo.InvariantCulture), "--flush-interval", "16",
                         "-o", ((4 + (round * 16)) << 20).ToString(CultureInfo.InvariantCulture), "--pattern=" + (0x20 + round), img })
                psi.ArgumentList.Add(arg);
            using var p = Process.Start(psi)!;
            await Task.Delay(rng.Next(300, 1500));
            if (!p.HasExited)
            {
                p.Kill();
                killedMidway++;
            }

            await p.WaitForExitAsync();
            if (format == "vdi")
            {
                var check = await Tools.RunAsync("qemu-img", "check", img);
                Assert.True(check.ExitCode == 0, $"round {round}: qemu-img check exit {check.ExitCode}\n{check.Stdout}{check.Stderr}");
            }
            else
            {
                (await Tools.RunAsync("qemu-img", "info", img)).Ok();
            }

            var read = (await ImageInteropChecks.QemuIoAsync(format, img, "read -P 0x11 0 1M")).Ok();
            Assert.DoesNotContain("Pattern verification failed", read.Stdout, StringComparison.Ordinal);
        }

        Assert.True(killedMidway >= 5, $"the writer should mostly be killed while running, was {killedMidway} of 10");
    }
}
