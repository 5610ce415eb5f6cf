using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Qcow2;

/// <summary>
/// block_passwd over a real QMP socket: a device on an AES image opens without its key, shows
/// encryption_key_missing, parks its I/O, refuses exports and cont with DeviceEncrypted, and works once the
/// password is given; the data it then serves and writes is what qemu reads.
/// </summary>
public class Qcow2EncryptionQmpTests
{
    private const string Password = "s3cret";

    private static string ImageOpts(string path) => $"driver=qcow2,file.filename={path},encrypt.key-secret=sec0";

    [Fact]
    public async Task Block_passwd_unlocks_a_device_that_waited_for_its_key()
    {
        await using var d = await QmpHarness.StartAsync();
        string img = d.Dir.File("e.qcow2");
        string[] secret = ["--object", $"secret,id=sec0,data={Password}"];
        (await Tools.RunAsync("qemu-img", ["create", .. secret, "-q", "-f", "qcow2", "-o", "encrypt.format=aes,encrypt.key-secret=sec0", img, "1M"])).Ok();
        (await Tools.RunAsync("qemu-io", [.. secret, "--image-opts", ImageOpts(img), "-c", "write -P 0x5a 0 64k", "-c", "write -P 0x33 100000 5000"])).Ok();

        await d.Client.ReturnAsync("blockdev-add", "{\"options\": {\"driver\": \"qcow2\", \"id\": \"d0\", \"file\": {\"driver\": \"file\", \"filename\": \"" + img + "\"}}}");
        var inserted = (await d.Client.ReturnAsync("query-block"))[0].GetProperty("inserted");
        Assert.True(inserted.GetProperty("encrypted").GetBoolean());
        Assert.True(inserted.GetProperty("encryption_key_missing").GetBoolean());

        // Nothing may start I/O that would hang on the missing key.
        await d.StartNbdAsync();
        Assert.Equal(("DeviceEncrypted", $"'d0' ({img}) is encrypted"),
            await d.Client.ErrorAsync("nbd-server-add", "{\"device\": \"d0\"}"));
        Assert.Equal(("DeviceEncrypted", $"'d0' ({img}) is encrypted"), await d.Client.ErrorAsync("cont"));

        // A request that reaches the device waits for the key instead of failing.
        var device = d.Graph.FindDevice("d0")!;
        byte[] buf = new byte[4096];
        var read = device.ReadAsync(100000, buf).AsTask();
        await Task.Delay(200);
        Assert.False(read.IsCompleted);

        await d.Client.ReturnAsync("block_passwd", "{\"device\": \"d0\", \"password\": \"" + Password + "\"}");
        await read.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.All(buf, b => Assert.Equal(0x33, b));
        inserted = (await d.Client.ReturnAsync("query-block"))[0].GetProperty("inserted");
        Assert.True(inserted.GetProperty("encrypted").GetBoolean());
        Assert.False(inserted.GetProperty("encryption_key_missing").GetBoolean());
        await d.Client.ReturnAsync("cont");

        // Now an NBD client reads and writes through it, unaligned, and qemu agrees on every byte.
        await d.ExportAsync("d0", writable: true);
        (await Tools.RunAsync("qemu-io", "-f", "raw", d.Url("d0"), "-c", "read -P 0x5a 0 64k", "-c", "write -P 0x77 1000 777", "-c", "write -P 0x66 300000 70000")).Ok();
        await d.Client.ReturnAsync("nbd-server-stop");
        await d.Client.ReturnAsync("blockdev-del", "{\"node-name\": \"d0\"}");

        var model = new byte[1 << 20];
        Array.Fill(model, (byte)0x5a, 0, 65536);
        Array.Fill(model, (byte)0x33, 100000, 5000);
        Array.Fill(model, (byte)0x77, 1000, 777);
        Array.Fill(model, (byte)0x66, 300000, 70000);
        string raw = d.Dir.File("back.raw");
        (await Tools.RunAsync("qemu-img", ["convert", .. secret, "--image-opts", ImageOpts(img), "-O", "raw", raw])).Ok();
        Assert.Equal(model, await File.ReadAllBytesAsync(raw));
        var check = await Tools.RunAsync("qemu-img", ["check", .. secret, "--image-opts", ImageOpts(img)]);
        Assert.True(check.ExitCode == 0, check.Stdout + check.Stderr);
    }

    [Fact]
    public async Task A_request_waiting_for_the_key_ends_when_the_medium_is_ejected()
    {
        await using var d = await QmpHarness.StartAsync();
        string img = d.Dir.File("e.qcow2");
        (await Tools.RunAsync("sharpblock", "img", "create", "-q", "-f", "qcow2", "-o", "encryption=on", img, "1M")).Ok();
        await d.Client.ReturnAsync("blockdev-add", "{\"options\": {\"driver\": \"qcow2\", \"id\": \"d0\", \"file\": {\"driver\": \"file\", \"filename\": \"" + img + "\"}}}");
        var read = d.Graph.FindDevice("d0")!.ReadAsync(0, new byte[512]).AsTask();
        await Task.Delay(100);
        Assert.False(read.IsCompleted);
        await d.Client.ReturnAsync("eject", "{\"device\": \"d0\"}");
        var ex = await Assert.ThrowsAsync<SharpBlock.Errors.BlockException>(() => read.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(SharpBlock.Errors.Errno.ENOMEDIUM, ex.Errno);

        // As QEMU 2.1: change inserts the encrypted medium, then says it needs block_passwd.
        Assert.Equal(("DeviceEncrypted", $"'d0' ({img}) is encrypted"),
            await d.Client.ErrorAsync("change", "{\"device\": \"d0\", \"target\": \"" + img + "\", \"arg\": \"qcow2\"}"));
        var inserted = (await d.Client.ReturnAsync("query-block"))[0].GetProperty("inserted");
        Assert.True(inserted.GetProperty("encryption_key_missing").GetBoolean());
        await d.Client.ReturnAsync("block_passwd", "{\"device\": \"d0\", \"password\": \"x\"}");
        await d.Graph.FindDevice("d0")!.ReadAsync(0, new byte[512]);
    }

    [Fact]
    public async Task Block_passwd_errors_are_qemus()
    {
        await using var d = await QmpHarness.StartAsync();
        string raw = d.Dir.PatternFile("r.raw", 65536);
        await d.AddRawAsync("plain", raw);
        Assert.Equal(("DeviceNotFound", "Device 'nosuch' not found"),
            await d.Client.ErrorAsync("block_passwd", "{\"device\": \"nosuch\", \"password\": \"x\"}"));
        Assert.Equal(("GenericError", "Device 'plain' is not encrypted"),
            await d.Client.ErrorAsync("block_passwd", "{\"device\": \"plain\", \"password\": \"x\"}"));
        // Nothing encrypted: cont goes through.
        await d.Client.ReturnAsync("cont");
    }
}
