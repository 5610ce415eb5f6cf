using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Qcow;

/// <summary>
/// Legacy AES qcow (version 1) images against qemu-img and qemu-io 7.2: what qemu encrypts we decrypt byte
/// for byte, what we encrypt qemu decrypts byte for byte, and the option refusals are qemu-img's.
/// </summary>
public class QcowEncryptionTests
{
    private const string Password = "qcow one";

    private static string[] Secret(string password = Password) => ["--object", $"secret,id=s0,data={password}"];

    private static string Opts(string path) => $"driver=qcow,file.filename={path},encrypt.key-secret=s0";

    /// <summary>The plaintext as <paramref name="tool"/> reads it through the key.</summary>
    private static async Task<byte[]> ReadAsync(string tool, TempDir dir, string img, string password = Password)
    {
        string raw = dir.File($"{tool}-{Guid.NewGuid():N}.raw");
        string[] cmd = tool == "sharpblock" ? ["sharpblock", "img"] : ["qemu-img"];
        (await Tools.RunAsync(cmd[0], [.. cmd[1..], "convert", .. Secret(password), "--image-opts", Opts(img), "-O", "raw", raw])).Ok();
        return await File.ReadAllBytesAsync(raw);
    }

    [Fact]
    public async Task Images_qemu_encrypts_read_back_identically_and_stay_ciphertext_on_disk()
    {
        using var dir = new TempDir();
        string img = dir.File("qemu.qcow");
        (await Tools.RunAsync("qemu-img", ["create", .. Secret(), "-q", "-f", "qcow", "-o", "encrypt.format=aes,encrypt.key-secret=s0", img, "3M"])).Ok();
        // Unaligned writes cross sectors and clusters; a zero write lands as encrypted zeros.
        (await Tools.RunAsync("qemu-io", [.. Secret(), "--image-opts", Opts(img), "-c", "write -P 0x5a 1000 70k", "-c", "write -P 0x33 2M 4k", "-c", "write -z 100k 8k"])).Ok();
        byte[] theirs = await ReadAsync("qemu-img", dir, img);
        Assert.Equal(theirs, await ReadAsync("sharpblock", dir, img));
        Assert.Equal(0x5a, theirs[1000]);
        byte[] plainSector = Enumerable.Repeat((byte)0x5a, 512).ToArray();
        Assert.True((await File.ReadAllBytesAsync(img)).AsSpan().IndexOf(plainSector) < 0, "plaintext found in the encrypted image");

        // A wrong password decrypts to noise in both tools alike (nothing in the format checks it).
        Assert.Equal(await ReadAsync("qemu-img", dir, img, "wrong"), await ReadAsync("sharpblock", dir, img, "wrong"));

        var info = (await Tools.RunAsync("sharpblock", "img", "info", img)).Ok().Stdout;
        Assert.Contains("encrypted: yes", info);
        var noKey = await Tools.RunAsync("sharpblock", "img", "convert", "-O", "raw", img, dir.File("x.raw"));
        Assert.NotEqual(0, noKey.ExitCode);
        Assert.Contains("Parameter 'encrypt.key-secret' is required for cipher", noKey.Stderr);
    }

    [Fact]
    public async Task Images_we_encrypt_read_back_identically_in_qemu()
    {
        using var dir = new TempDir();
        string raw = dir.File("src.raw");
        byte[] disk = new byte[2 << 20];
        new Random(14).NextBytes(disk.AsSpan(0, 300_000));
        disk.AsSpan(1 << 20, 5000).Fill(0x77);
        await File.WriteAllBytesAsync(raw, disk);
        string img = dir.File("ours.qcow");
        (await Tools.RunAsync("sharpblock", ["img", "convert", .. Secret(), "-f", "raw", "-O", "qcow", "-o", "encrypt.format=aes,encrypt.key-secret=s0", raw, img])).Ok();
        Assert.Equal(disk, await ReadAsync("qemu-img", dir, img));
        byte[] file = await File.ReadAllBytesAsync(img);
        Assert.True(file.AsSpan().IndexOf(disk.AsSpan(1 << 20, 512)) < 0, "plaintext found in the encrypted image");

        // Partial writes through qemu-io on our image, then read by both tools.
        (await Tools.RunAsync("qemu-io", [.. Secret(), "--image-opts", Opts(img), "-c", "write -P 0x19 777 3000"])).Ok();
        Assert.Equal(await ReadAsync("qemu-img", dir, img), await ReadAsync("sharpblock", dir, img));
        disk.AsSpan(777, 3000).Fill(0x19);
        Assert.Equal(disk, await ReadAsync("sharpblock", dir, img));

        // Our unaligned writes through the library (in place, and into a new cluster); qemu decrypts them.
        var g = new SharpBlock.Graph.BlockGraph();
        await using (g)
        {
            var node = await g.AddAsync(SharpBlock.Drivers.ImageFormats.ImageOptions(img, "qcow", readOnly: false, "n0"));
            Assert.True(node.EncryptionKeyMissing);
            node.SetEncryptionKey(Password);
            await node.WriteAsync(1234, Enumerable.Repeat((byte)0x61, 5000).ToArray());
            await node.WriteAsync(1_500_001, Enumerable.Repeat((byte)0x62, 700).ToArray());
            await node.FlushAsync();
        }

        disk.AsSpan(1234, 5000).Fill(0x61);
        disk.AsSpan(1_500_001, 700).Fill(0x62);
        Assert.Equal(disk, await ReadAsync("qemu-img", dir, img));
    }

    [Fact]
    public async Task Create_writes_qemus_header_and_refuses_as_qemu_img()
    {
        using var dir = new TempDir();
        string ours = dir.File("ours.qcow"), theirs = dir.File("theirs.qcow");
        var o = await Tools.RunAsync("sharpblock", ["img", "create", .. Secret(), "-f", "qcow", "-o", "encryption=on,encrypt.key-secret=s0", ours, "4M"]);
        var q = await Tools.RunAsync("qemu-img", ["create", .. Secret(), "-f", "qcow", "-o", "encryption=on,encrypt.key-secret=s0", theirs, "4M"]);
        Assert.Equal(q.Ok().Stdout.Replace(theirs, ours, StringComparison.Ordinal), o.Ok().Stdout);
        Assert.Equal(await File.ReadAllBytesAsync(theirs), await File.ReadAllBytesAsync(ours));

        foreach (string opts in (string[])["encrypt.format=aes", "encrypt.format=luks,encrypt.key-secret=s0", "encryption=off,encrypt.key-secret=s0",
            "encryption=on,encrypt.format=aes,encrypt.key-secret=s0", "encrypt.format=aes,encrypt.key-secret=nosuch"])
        {
            var a = await Tools.RunAsync("sharpblock", ["img", "create", .. Secret(), "-q", "-f", "qcow", "-o", opts, dir.File("a.qcow"), "1M"]);
            var b = await Tools.RunAsync("qemu-img", ["create", .. Secret(), "-q", "-f", "qcow", "-o", opts, dir.File("b.qcow"), "1M"]);
            Assert.NotEqual(0, a.ExitCode);
            Assert.Equal(b.ExitCode, a.ExitCode);
            Assert.Equal(Message(b.Stderr), Message(a.Stderr));
        }

        string raw = dir.File("zero.raw");
        File.WriteAllBytes(raw, new byte[65536]);
        var c = await Tools.RunAsync("sharpblock", ["img", "convert", .. Secret(), "-c", "-O", "qcow", "-o", "encrypt.format=aes,encrypt.key-secret=s0", raw, dir.File("c.qcow")]);
        Assert.NotEqual(0, c.ExitCode);
        Assert.Contains("Compression and encryption not supported at the same time", c.Stderr);
    }

    [Theory]
    [InlineData("enc", "encrypt.key-secret=s0", "Parameter 'encrypt.format' is missing")]
    [InlineData("enc", "encrypt.format=aes", "Parameter 'encrypt.key-secret' is required for cipher")]
    [InlineData("enc", "encrypt.format=aes,encrypt.key-secret=nosuch", "No secret with id 'nosuch'")]
    [InlineData("plain", "encrypt.format=aes,encrypt.key-secret=s0", "No encryption in image header, but options specified format 'aes'")]
    public async Task The_daemon_refuses_bad_key_options_as_qemu_storage_daemon(string kind, string encrypt, string message)
    {
        using var dir = new TempDir();
        string img = dir.File("img.qcow");
        string[] create = kind == "enc" ? [.. Secret(), "-o", "encrypt.format=aes,encrypt.key-secret=s0"] : [];
        (await Tools.RunAsync("qemu-img", ["create", "-q", "-f", "qcow", .. create, img, "1M"])).Ok();
        string blockdev = $"driver=qcow,node-name=q0,file.driver=file,file.filename={img},{encrypt}";
        var theirs = await Tools.RunAsync("qemu-storage-daemon", [.. Secret(), "--blockdev", blockdev]);
        Assert.Contains(message, theirs.Stderr, StringComparison.Ordinal);
        var ours = await Tools.RunAsync("sharpblock", ["daemon", .. Secret(), "--blockdev", blockdev]);
        Assert.NotEqual(0, ours.ExitCode);
        Assert.Contains(message, ours.Stderr, StringComparison.Ordinal);
    }

    /// <summary>The error after the tool's name and the image's (qemu-img names the file, we may too).</summary>
    private static string Message(string stderr) => stderr.Trim().Split(": ")[^1];
}
