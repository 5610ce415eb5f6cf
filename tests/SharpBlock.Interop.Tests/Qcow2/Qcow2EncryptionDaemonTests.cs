using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Qcow2;

/// <summary>
/// The daemon unlocks an AES image at start the way qemu-storage-daemon 7.2 does: --object secret plus
/// encrypt.format=aes,encrypt.key-secret=ID on the qcow2 node; its refusals are qemu's, word for word.
/// </summary>
public class Qcow2EncryptionDaemonTests
{
    private const string Secret = "secret,id=sec0,data=correct horse";

    [Fact]
    public async Task A_key_from_object_secret_unlocks_the_image_for_nbd_clients()
    {
        using var dir = new TempDir();
        string img = dir.File("enc.qcow2");
        string opts = $"driver=qcow2,file.filename={img},encrypt.key-secret=sec0";
        (await Tools.RunAsync("qemu-img", "create", "-q", "--object", Secret, "-f", "qcow2", "-o", "encrypt.format=aes,encrypt.key-secret=sec0", img, "2M")).Ok();
        (await Tools.RunAsync("qemu-io", "--object", Secret, "--image-opts", opts, "-c", "write -P 0x5a 4k 100k")).Ok();

        string nbd = dir.File("nbd.sock"), qmp = dir.File("qmp.sock");
        using var p = Tools.StartSharpBlock("daemon", "--qmp", "unix:" + qmp, "--object", Secret,
            "--blockdev", $"driver=qcow2,node-name=q0,file.driver=file,file.filename={img},encrypt.format=aes,encrypt.key-secret=sec0",
            "--nbd-server", $"addr.type=unix,addr.path={nbd}",
            "--export", "type=nbd,id=e0,node-name=q0,writable=on,name=exp");
        try
        {
            await SocketWait.ForListenerAsync(qmp);
            string url = $"nbd+unix:///exp?socket={nbd}";
            (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "read -P 0x5a 4k 100k", "-c", "write -P 0x33 1M 3k", url)).Ok();
            await using (var c = await QmpTestClient.ConnectUnixAsync(qmp))
                await c.ExecuteAsync("quit");
            Assert.True(p.WaitForExit(20000));
            Assert.Equal(0, p.ExitCode);
        }
        finally
        {
            if (!p.HasExited)
                p.Kill();
        }

        // What qemu decrypts is what the NBD client wrote.
        (await Tools.RunAsync("qemu-io", "--object", Secret, "--image-opts", opts, "-c", "read -P 0x5a 4k 100k", "-c", "read -P 0x33 1M 3k", "-c", "read -P 0 1051648 4k")).Ok();
        var check = await Tools.RunAsync("qemu-img", "check", "--object", Secret, "--image-opts", opts);
        Assert.True(check.ExitCode == 0, check.Stdout + check.Stderr);
    }

    [Theory]
    [InlineData("encrypt.key-secret=sec0", "Parameter 'encrypt.format' is missing")]
    [InlineData("encrypt.format=aes", "Parameter 'encrypt.key-secret' is required for cipher")]
    [InlineData("encrypt.format=aes,encrypt.key-secret=nosuch", "No secret with id 'nosuch'")]
    [InlineData("encrypt.format=luks,encrypt.key-secret=sec0", "Header reported 'aes' encryption format but options specify 'luks'")]
    public async Task Bad_encryption_options_are_refused_as_qemu_refuses_them(string encrypt, string message)
    {
        using var dir = new TempDir();
        string img = dir.File("enc.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-q", "--object", Secret, "-f", "qcow2", "-o", "encrypt.format=aes,encrypt.key-secret=sec0", img, "1M")).Ok();
        string blockdev = $"driver=qcow2,node-name=q0,file.driver=file,file.filename={img},{encrypt}";
        var theirs = await Tools.RunAsync("qemu-storage-daemon", "--object", Secret, "--blockdev", blockdev);
        Assert.Contains(message, theirs.Stderr, StringComparison.Ordinal);
        var ours = await Tools.RunAsync("sharpblock", "daemon", "--object", Secret, "--blockdev", blockdev);
        Assert.NotEqual(0, ours.ExitCode);
        Assert.Contains(message, ours.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Options_naming_a_cipher_on_a_plain_image_are_refused()
    {
        using var dir = new TempDir();
        string img = dir.File("plain.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", img, "1M")).Ok();
        var ours = await Tools.RunAsync("sharpblock", "daemon", "--object", Secret,
            "--blockdev", $"driver=qcow2,node-name=q0,file.driver=file,file.filename={img},encrypt.format=aes,encrypt.key-secret=sec0");
        Assert.NotEqual(0, ours.ExitCode);
        Assert.Contains("No encryption in image header, but options specified format 'aes'", ours.Stderr, StringComparison.Ordinal);
    }
}
