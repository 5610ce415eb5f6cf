using SharpBlock.Interop.Tests.Vdi;
using SharpBlock.Testing;
using SharpBlock.Tests.Drivers.Dmg;

namespace SharpBlock.Interop.Tests.Formats;

/// <summary>
/// bochs, cloop and dmg images (made by bximage, create_compressed_fs and the dmg generator) exported by the
/// daemon over NBD: nbdcopy and qemu-img read what qemu-img reads from the file, nbdinfo sees a read-only
/// export, and a client that wants to write is refused while the daemon keeps serving.
/// </summary>
public class ReadOnlyFormatExportTests
{
    private static async Task<string> MakeAsync(TempDir dir, string format)
    {
        switch (format)
        {
            case "bochs":
                return (await Bochs.BochsInteropTests.BximageAsync(dir, 3)).Img;
            case "cloop":
                return (await Cloop.CloopInteropTests.MakeAsync(dir, 65536)).Img;
            default:
                byte[] disk = await ImageInteropChecks.MixedRawAsync(dir.File("mixed.raw"), 2, seed: 31);
                string img = dir.File("disk.dmg");
                (uint, int)[] plan = [(DmgImageBuilder.Zlib, 2048), (DmgImageBuilder.Zero, 1000), (DmgImageBuilder.Raw, 1048)];
                await File.WriteAllBytesAsync(img, DmgImageBuilder.Build(disk, plan, resourceFork: false, relativeData: false));
                return img;
        }
    }

    [Theory]
    [InlineData("bochs")]
    [InlineData("cloop")]
    [InlineData("dmg")]
    public async Task The_daemon_exports_the_image_read_only_over_nbd(string format)
    {
        using var dir = new TempDir();
        string img = await MakeAsync(dir, format);
        string want = dir.File("qemu.raw");
        (await Tools.RunAsync("qemu-img", "convert", "-f", format, "-O", "raw", img, want)).Ok();

        string qmp = dir.File("qmp.sock"), nbd = dir.File("nbd.sock");
        using var p = Tools.StartSharpBlock("daemon", "--qmp", "unix:" + qmp,
            "--blockdev", $"driver={format},node-name=n0,read-only=on,file.driver=file,file.filename={img}",
            "--nbd-server", $"addr.type=unix,addr.path={nbd}",
            "--export", "type=nbd,id=e0,node-name=n0,name=exp");
        try
        {
            await SocketWait.ForListenerAsync(qmp);
            string url = $"nbd+unix:///exp?socket={nbd}";
            string copied = dir.File("nbdcopy.raw");
            (await Tools.RunAsync("nbdcopy", url, copied)).Ok();
            Assert.Equal(await File.ReadAllBytesAsync(want), await File.ReadAllBytesAsync(copied));
            (await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "raw", url, want)).Ok();

            var info = (await Tools.RunAsync("nbdinfo", "--json", url)).Ok().Stdout;
            Assert.Contains("\"is_read_only\": true", info, StringComparison.Ordinal);
            var write = await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 0x11 0 4k", url);
            // qemu-io sees the export's read-only flag and refuses to open it for writing.
            Assert.Equal(1, write.ExitCode);
            Assert.Contains("Permission denied", write.Stderr, StringComparison.Ordinal);
            // Still serving after the refused client.
            (await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "raw", url, want)).Ok();
        }
        finally
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
        }
    }
}
