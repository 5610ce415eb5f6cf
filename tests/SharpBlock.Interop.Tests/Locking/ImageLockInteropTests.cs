using SharpBlock.Drivers.Protocol.File;
using SharpBlock.Graph;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Locking;

/// <summary>
/// SharpBlock and QEMU lock images the same way, so neither can open an image the other is writing.
/// These run the real qemu-img and qemu-io.
/// </summary>
public class ImageLockInteropTests
{
    [Fact]
    public async Task Qemu_io_cannot_write_an_image_we_write()
    {
        using var dir = new TempDir();
        string path = dir.PatternFile("a.img", 1 << 20);
        await using (FileNode.Open(path, NodeSettings.Default))
        {
            var r = await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write 0 512", path);
            Assert.NotEqual(0, r.ExitCode);
            Assert.Contains("Failed to get \"write\" lock", r.Stdout + r.Stderr, StringComparison.Ordinal);
            // Readers share writes in QEMU 7, so a read-only qemu-io may look while we write.
            (await Tools.RunAsync("qemu-io", "-r", "-f", "raw", "-c", "read 0 512", path)).Ok();
        }

        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write 0 512", path)).Ok();
    }

    /// <summary>
    /// qemu-io holding the image open read-write, once it has written 0x5a over the first 4 KiB (so the image
    /// is certainly open and locked); end it with <see cref="QuitAsync"/>.
    /// </summary>
    private static async Task<System.Diagnostics.Process> QemuIoWritingAsync(string path, string format)
    {
        var psi = new System.Diagnostics.ProcessStartInfo(Tools.Require("qemu-io"))
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "-f", format, path })
            psi.ArgumentList.Add(a);
        var qemu = System.Diagnostics.Process.Start(psi)!;
        await qemu.StandardInput.WriteLineAsync("write -P 0x5a 0 4096");
        await qemu.StandardInput.FlushAsync();
        string? line;
        while ((line = await qemu.StandardOutput.ReadLineAsync()) != null && !line.Contains("wrote", StringComparison.Ordinal))
        {
        }

        return qemu;
    }

    private static async Task QuitAsync(System.Diagnostics.Process qemu)
    {
        await qemu.StandardInput.WriteLineAsync("quit");
        qemu.StandardInput.Close();
        await qemu.WaitForExitAsync();
    }

    [Fact]
    public async Task A_qcow2_image_qemu_io_writes_is_read_only_with_force_share_as_qemu_img_does()
    {
        using var dir = new TempDir();
        string path = dir.File("busy.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", path, "1M")).Ok();
        using var qemu = await QemuIoWritingAsync(path, "qcow2");
        try
        {
            // The qcow2 metadata could change under a reader, so both tools refuse it...
            foreach (var tool in new[] { "qemu-img", "sharpblock" })
            {
                var r = tool == "qemu-img" ? await Tools.RunAsync("qemu-img", "info", path) : await Tools.RunAsync("sharpblock", "img", "info", path);
                Assert.Equal(1, r.ExitCode);
                Assert.Contains("Failed to get shared \"write\" lock", r.Stderr, StringComparison.Ordinal);
                Assert.Contains($"Is another process using the image [{path}]?", r.Stderr, StringComparison.Ordinal);
            }

            // ...unless told to accept an inconsistent view; the raw file itself may always be read.
            Assert.Contains("file format: qcow2", (await Tools.RunAsync("sharpblock", "img", "info", "-U", path)).Ok().Stdout, StringComparison.Ordinal);
            (await Tools.RunAsync("sharpblock", "img", "info", "-f", "raw", path)).Ok();
        }
        finally
        {
            await QuitAsync(qemu);
        }

        (await Tools.RunAsync("sharpblock", "img", "info", path)).Ok();
    }

    [Fact]
    public async Task We_cannot_open_an_image_qemu_io_is_writing()
    {
        using var dir = new TempDir();
        string path = dir.PatternFile("a.img", 1 << 20);
        using var qemu = await QemuIoWritingAsync(path, "raw");
        try
        {
            var ex = Assert.Throws<SharpBlock.Errors.ImageLockException>(() => FileNode.Open(path, NodeSettings.Default));
            // qemu-io shares writes but not resize, so the conflict QEMU itself would report is on "write".
            Assert.Matches("^Failed to get (shared )?\"write\" lock$", ex.Message);
            Assert.Equal(path, ex.Path);
        }
        finally
        {
            await QuitAsync(qemu);
        }

        await using var node = FileNode.Open(path, NodeSettings.Default);
        var buf = new byte[4096];
        await node.ReadAsync(0, buf);
        Assert.All(buf, b => Assert.Equal(0x5a, b));
    }

    [Fact]
    public async Task Data_we_write_equals_what_qemu_img_sees()
    {
        using var dir = new TempDir();
        string ours = dir.File("ours.img"), theirs = dir.File("theirs.img");
        (await Tools.RunAsync("qemu-img", "create", "-f", "raw", ours, "4M")).Ok();
        (await Tools.RunAsync("qemu-img", "create", "-f", "raw", theirs, "4M")).Ok();
        await using (var node = FileNode.Open(ours, NodeSettings.Default))
        {
            await node.WriteAsync(1000, Enumerable.Repeat((byte)0x42, 5000).ToArray());
            await node.WriteZeroesAsync(2000, 100);
        }

        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 0x42 1000 5000", "-c", "write -z 2000 100", theirs)).Ok();
        (await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "raw", ours, theirs)).Ok();
    }
}
