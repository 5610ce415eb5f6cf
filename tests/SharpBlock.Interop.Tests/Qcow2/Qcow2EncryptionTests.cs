using System.Text.Json;
using SharpBlock.Drivers;
using SharpBlock.Drivers.Format.Qcow2;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Io;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Qcow2;

/// <summary>
/// Legacy AES qcow2 images (crypt_method 1) against qemu-img and qemu-io 7.2: what qemu writes we read byte
/// for byte, what we write qemu reads byte for byte and checks clean.
/// </summary>
public class Qcow2EncryptionTests
{
    private const string Password = "correct horse";

    private static string[] Secret(string id = "sec0", string password = Password) => ["--object", $"secret,id={id},data={password}"];

    private static string ImageOpts(string path, string id = "sec0") => $"driver=qcow2,file.filename={path},encrypt.key-secret={id}";

    /// <summary>qemu-img create of an AES image (qemu 7.2 wants the secret even though only the header is written).</summary>
    private static async Task QemuCreateAsync(string path, string size, string extra = "")
    {
        (await Tools.RunAsync("qemu-img", ["create", .. Secret(), "-q", "-f", "qcow2", "-o", "encrypt.format=aes,encrypt.key-secret=sec0" + extra, path, size])).Ok();
    }

    /// <summary>What qemu itself reads out of an encrypted image.</summary>
    private static async Task<byte[]> QemuReadAsync(TempDir dir, string path, string password = Password)
    {
        string raw = dir.File("qemu-" + Guid.NewGuid().ToString("N")[..8] + ".raw");
        (await Tools.RunAsync("qemu-img", ["convert", .. Secret(password: password), "--image-opts", ImageOpts(path), "-O", "raw", raw])).Ok();
        return await File.ReadAllBytesAsync(raw);
    }

    private static async Task AssertQemuCheckCleanAsync(string path)
    {
        var r = await Tools.RunAsync("qemu-img", ["check", .. Secret(), "--image-opts", ImageOpts(path)]);
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        Assert.Contains("No errors were found on the image.", r.Stdout);
    }

    /// <summary>An empty AES overlay (top.qcow2) over a plain 1 MiB base (base.qcow2) full of 0x42.</summary>
    private static async Task<string> EncryptedOverPlainBaseAsync(TempDir dir)
    {
        string basePath = dir.File("base.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", basePath, "1M")).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "qcow2", "-c", "write -P 0x42 0 1M", basePath)).Ok();
        string top = dir.File("top.qcow2");
        (await Tools.RunAsync("qemu-img", ["create", .. Secret(), "-q", "-f", "qcow2", "-o", "encrypt.format=aes,encrypt.key-secret=sec0",
            "-b", "base.qcow2", "-F", "qcow2", top])).Ok();
        return top;
    }

    private static async Task<(BlockGraph Graph, Qcow2Node Node)> OpenAsync(string path, bool readOnly, string? password)
    {
        var g = new BlockGraph();
        var node = (Qcow2Node)await g.AddAsync(ImageFormats.ImageOptions(path, "qcow2", readOnly, "enc"));
        if (password != null)
            node.SetEncryptionKey(password);
        return (g, node);
    }

    [Fact]
    public async Task What_qemu_io_writes_we_read_identically()
    {
        using var dir = new TempDir();
        string img = dir.File("q.qcow2");
        await QemuCreateAsync(img, "2M", ",cluster_size=4096");
        (await Tools.RunAsync("qemu-io", [.. Secret(), "--image-opts", ImageOpts(img),
            "-c", "write -P 0x5a 0 64k", "-c", "write -P 0x11 70000 1000", "-c", "write -P 0x77 1040000 300000", "-c", "write -z 1200000 8192"])).Ok();
        byte[] expected = await QemuReadAsync(dir, img);

        string ours = dir.File("ours.raw");
        (await Tools.RunAsync("sharpblock", ["img", "convert", .. Secret(), "--image-opts", ImageOpts(img), "-O", "raw", ours])).Ok();
        Assert.Equal(expected, await File.ReadAllBytesAsync(ours));
        Assert.Equal(0x11, expected[70000]);

        // info says what qemu-img says of the same image, line for line and member for member.
        var info = (await Tools.RunAsync("sharpblock", "img", "info", img)).Ok();
        Assert.Equal((await Tools.RunAsync("qemu-img", "info", img)).Ok().Stdout, info.Stdout);
        var json = JsonDocument.Parse((await Tools.RunAsync("sharpblock", "img", "info", "--output=json", img)).Ok().Stdout).RootElement;
        var theirs = JsonDocument.Parse((await Tools.RunAsync("qemu-img", "info", "--output=json", img)).Ok().Stdout).RootElement;
        Assert.True(json.GetProperty("encrypted").GetBoolean());
        Assert.Equal(
            theirs.GetProperty("format-specific").GetProperty("data").EnumerateObject().Select(p => (p.Name, p.Value.GetRawText())).Order(),
            json.GetProperty("format-specific").GetProperty("data").EnumerateObject().Select(p => (p.Name, p.Value.GetRawText())).Order());
    }

    [Fact]
    public async Task What_we_convert_into_an_encrypted_image_qemu_reads_identically()
    {
        using var dir = new TempDir();
        string src = dir.PatternFile("src.raw", 3 << 20);
        // A hole in the middle stays a hole (unencrypted zeros are fine: unallocated clusters read as zeros).
        using (var fs = new FileStream(src, FileMode.Open))
        {
            fs.Position = 1 << 20;
            fs.Write(new byte[1 << 20]);
        }

        string img = dir.File("ours.qcow2");
        (await Tools.RunAsync("sharpblock", ["img", "convert", .. Secret(), "-O", "qcow2", "-o", "encrypt.format=aes,encrypt.key-secret=sec0", src, img])).Ok();
        Assert.Equal(await File.ReadAllBytesAsync(src), await QemuReadAsync(dir, img));
        await AssertQemuCheckCleanAsync(img);
        var info = (await Tools.RunAsync("qemu-img", "info", img)).Ok();
        Assert.Contains("encrypted: yes", info.Stdout);
        Assert.Contains("format: aes", info.Stdout);

        // The 2.1-era spelling makes the same kind of image.
        string old = dir.File("old.qcow2");
        (await Tools.RunAsync("sharpblock", ["img", "convert", .. Secret(), "-O", "qcow2", "-o", "encryption=on,encrypt.key-secret=sec0,compat=0.10", src, old])).Ok();
        Assert.Equal(await File.ReadAllBytesAsync(src), await QemuReadAsync(dir, old));
        await AssertQemuCheckCleanAsync(old);
    }

    [Fact]
    public async Task Create_needs_no_key_and_qemu_sees_an_aes_image()
    {
        using var dir = new TempDir();
        string a = dir.File("a.qcow2");
        string b = dir.File("b.qcow2");
        var r = (await Tools.RunAsync("sharpblock", "img", "create", "-f", "qcow2", "-o", "encryption=on", a, "1M")).Ok();
        Assert.Contains("fmt=qcow2 encryption=on cluster_size=65536", r.Stdout);
        (await Tools.RunAsync("sharpblock", "img", "create", "-q", "-f", "qcow2", "-o", "encrypt.format=aes", b, "1M")).Ok();
        foreach (var p in new[] { a, b })
        {
            var info = (await Tools.RunAsync("qemu-img", "info", p)).Ok();
            Assert.Contains("encrypted: yes", info.Stdout);
            Assert.Contains("format: aes", info.Stdout);
            await AssertQemuCheckCleanAsync(p);
        }

        var both = await Tools.RunAsync("sharpblock", "img", "create", "-f", "qcow2", "-o", "encryption=on,encrypt.format=aes", dir.File("c.qcow2"), "1M");
        Assert.Equal(1, both.ExitCode);
        Assert.Contains("'encrypt.format' and its alias 'encryption' can't be used at the same time", both.Stderr);
    }

    [Fact]
    public async Task Partial_writes_cow_zeroes_and_snapshots_through_the_library_read_back_in_qemu()
    {
        using var dir = new TempDir();
        string img = dir.File("lib.qcow2");
        const int Size = 2 << 20;
        await Qcow2Creator.CreateAsync(img, new Qcow2CreateOptions { Size = Size, ClusterSize = 65536, Encrypted = true });
        var model = new byte[Size];
        byte[] atSnapshot;
        var rnd = new Random(7);
        var (g, node) = await OpenAsync(img, readOnly: false, Password);
        await using (g)
        {
            async Task WriteAsync(int off, int len)
            {
                byte[] d = new byte[len];
                rnd.NextBytes(d);
                await node.WriteAsync(off, d);
                d.CopyTo(model, off);
            }

            // Unaligned inside a fresh cluster, then inside an allocated one (sector read-modify-write),
            // across a cluster boundary, one byte, and the last sector of the image.
            await WriteAsync(1000, 100);
            await WriteAsync(1100, 3);
            await WriteAsync(511, 2);
            await WriteAsync(65000, 3000);
            await WriteAsync(200_001, 1);
            await WriteAsync(Size - 700, 700);
            await node.WriteZeroesAsync(131072, 65536);
            Array.Clear(model, 131072, 65536);
            await node.WriteZeroesAsync(66000, 10);
            Array.Clear(model, 66000, 10);

            // A snapshot makes the clusters shared: later writes copy them (decrypt, merge, encrypt again).
            await node.CreateSnapshotAsync("s1");
            atSnapshot = (byte[])model.Clone();
            await WriteAsync(1050, 20);
            await WriteAsync(65536 + 7, 5);

            byte[] back = new byte[Size];
            await node.ReadAsync(0, back);
            Assert.Equal(model, back);
            byte[] odd = new byte[777];
            await node.ReadAsync(64999, odd);
            Assert.Equal(model.AsSpan(64999, 777).ToArray(), odd);
            await node.FlushAsync();
        }

        Assert.Equal(model, await QemuReadAsync(dir, img));
        await AssertQemuCheckCleanAsync(img);
        (await Tools.RunAsync("qemu-img", ["snapshot", .. Secret(), "-a", "s1", "--image-opts", ImageOpts(img)])).Ok();
        Assert.Equal(atSnapshot, await QemuReadAsync(dir, img));
    }

    [Fact]
    public async Task Copy_on_write_from_a_plain_backing_file_encrypts_the_backing_data()
    {
        using var dir = new TempDir();
        string top = await EncryptedOverPlainBaseAsync(dir);
        var model = new byte[1 << 20];
        Array.Fill(model, (byte)0x42);
        var (g, node) = await OpenAsync(top, readOnly: false, Password);
        await using (g)
        {
            await node.WriteAsync(70000, new byte[] { 1, 2, 3 });
            model[70000] = 1;
            model[70001] = 2;
            model[70002] = 3;
        }

        Assert.Equal(model, await QemuReadAsync(dir, top));
        await AssertQemuCheckCleanAsync(top);
    }

    [Fact]
    public async Task Downgrading_to_compat_0_10_writes_expanded_zero_clusters_encrypted()
    {
        // qemu-img 7.2 fills such clusters with plain zeros, which then decrypt to garbage; we encrypt them.
        using var dir = new TempDir();
        string top = await EncryptedOverPlainBaseAsync(dir);
        (await Tools.RunAsync("qemu-io", [.. Secret(), "--image-opts", ImageOpts(top), "-c", "write -z 64k 64k", "-c", "write -z -u 192k 64k", "-c", "write -P 7 0 4k"])).Ok();
        var before = await QemuReadAsync(dir, top);

        var r = await Tools.RunAsync("sharpblock", ["img", "amend", "-o", "compat=0.10", top]);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("encrypt.key-secret", r.Stderr, StringComparison.Ordinal);
        (await Tools.RunAsync("sharpblock", ["img", "amend", .. Secret(), "-o", "compat=0.10", "--image-opts", ImageOpts(top)])).Ok();

        Assert.Contains("compat: 0.10", (await Tools.RunAsync("qemu-img", "info", top)).Ok().Stdout, StringComparison.Ordinal);
        var after = await QemuReadAsync(dir, top);
        Assert.All(after[65536..131072], b => Assert.Equal(0, b));
        Assert.Equal(before, after);
        await AssertQemuCheckCleanAsync(top);
    }

    [Fact]
    public async Task Bench_writes_through_the_key_its_image_opts_name()
    {
        using var dir = new TempDir();
        string img = dir.File("enc.qcow2");
        await QemuCreateAsync(img, "1M");
        (await Tools.RunAsync("sharpblock", ["img", "bench", .. Secret(), "-w", "-c", "256", "--pattern", "7", "--image-opts", ImageOpts(img)])).Ok();
        (await Tools.RunAsync("qemu-io", [.. Secret(), "--image-opts", ImageOpts(img), "-c", "read -P 7 0 1M"])).Ok();
        var r = await Tools.RunAsync("sharpblock", "img", "bench", "--image-opts", "driver=qcow2,file.bogus=1");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal("sharpblock: Parameter 'file.driver' is missing", r.Stderr.Trim());
    }

    [Fact]
    public async Task Commit_dd_and_map_take_keys_for_a_whole_encrypted_chain()
    {
        using var dir = new TempDir();
        string basePath = dir.File("b.qcow2");
        string top = dir.File("t.qcow2");
        await QemuCreateAsync(basePath, "1M");
        (await Tools.RunAsync("qemu-io", [.. Secret(), "--image-opts", ImageOpts(basePath), "-c", "write -P 0x11 0 1M"])).Ok();
        (await Tools.RunAsync("qemu-img", ["create", .. Secret(), "-q", "-f", "qcow2", "-o", "encrypt.format=aes,encrypt.key-secret=sec0", "-b", "b.qcow2", "-F", "qcow2", top])).Ok();
        string chainOpts = ImageOpts(top) + ",backing.encrypt.key-secret=sec0";
        (await Tools.RunAsync("qemu-io", [.. Secret(), "--image-opts", chainOpts, "-c", "write -P 0x22 1000 70000"])).Ok();
        string expected = dir.File("expected.raw");
        (await Tools.RunAsync("qemu-img", ["convert", .. Secret(), "--image-opts", chainOpts, "-O", "raw", expected])).Ok();

        // Without the backing file's key the chain cannot be read; the error names the file that lacks it.
        var noBackingKey = await Tools.RunAsync("sharpblock", ["img", "dd", .. Secret(), "--image-opts", "if=" + ImageOpts(top), "of=" + dir.File("x.raw")]);
        Assert.Equal(1, noBackingKey.ExitCode);
        Assert.Contains($"Could not open '{basePath}': Parameter 'encrypt.key-secret' is required for cipher", noBackingKey.Stderr);

        string dd = dir.File("dd.raw");
        (await Tools.RunAsync("sharpblock", ["img", "dd", .. Secret(), "--image-opts", "if=" + chainOpts, "of=" + dd, "bs=64k"])).Ok();
        Assert.Equal(await File.ReadAllBytesAsync(expected), await File.ReadAllBytesAsync(dd));

        // Encrypted clusters have no host offset to show, in qemu-img's map as in ours.
        var ourMap = (await Tools.RunAsync("sharpblock", ["img", "map", .. Secret(), "--output=json", "--image-opts", chainOpts])).Ok();
        var qemuMap = (await Tools.RunAsync("qemu-img", ["map", .. Secret(), "--output=json", "--image-opts", chainOpts])).Ok();
        Assert.Equal(qemuMap.Stdout.Trim(), ourMap.Stdout.Trim());

        (await Tools.RunAsync("sharpblock", ["img", "commit", .. Secret(), "--image-opts", chainOpts])).Ok();
        Assert.Equal(await File.ReadAllBytesAsync(expected), await QemuReadAsync(dir, basePath));
        await AssertQemuCheckCleanAsync(basePath);
    }

    [Fact]
    public async Task A_wrong_password_reads_other_data_without_an_error()
    {
        using var dir = new TempDir();
        string img = dir.File("w.qcow2");
        await QemuCreateAsync(img, "1M");
        (await Tools.RunAsync("qemu-io", [.. Secret(), "--image-opts", ImageOpts(img), "-c", "write -P 0x5a 0 64k"])).Ok();
        string right = dir.File("right.raw");
        string wrong = dir.File("wrong.raw");
        (await Tools.RunAsync("sharpblock", ["img", "convert", .. Secret(), "--image-opts", ImageOpts(img), "-O", "raw", right])).Ok();
        (await Tools.RunAsync("sharpblock", ["img", "convert", .. Secret(password: "not it"), "--image-opts", ImageOpts(img), "-O", "raw", wrong])).Ok();
        byte[] r = await File.ReadAllBytesAsync(right);
        byte[] w = await File.ReadAllBytesAsync(wrong);
        Assert.Equal(0x5a, r[0]);
        Assert.NotEqual(r.AsSpan(0, 65536).ToArray(), w.AsSpan(0, 65536).ToArray());
        // qemu's wrong-password garbage is ours too: same cipher, same wrong key.
        Assert.Equal(await QemuReadAsync(dir, img, "not it"), w);

        // The password may come from a file (verbatim) or in base64.
        string pwFile = dir.File("pw");
        await File.WriteAllTextAsync(pwFile, Password);
        string fromFile = dir.File("file.raw");
        (await Tools.RunAsync("sharpblock", "img", "convert", "--object", $"secret,id=sec0,file={pwFile}", "--image-opts", ImageOpts(img), "-O", "raw", fromFile)).Ok();
        Assert.Equal(r, await File.ReadAllBytesAsync(fromFile));
        string b64 = Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(Password));
        string fromB64 = dir.File("b64.raw");
        (await Tools.RunAsync("sharpblock", "img", "convert", "--object", $"secret,id=sec0,data={b64},format=base64", "--image-opts", ImageOpts(img), "-O", "raw", fromB64)).Ok();
        Assert.Equal(r, await File.ReadAllBytesAsync(fromB64));
    }

    [Fact]
    public async Task Without_a_key_data_commands_fail_with_one_line_and_info_works()
    {
        using var dir = new TempDir();
        string img = dir.File("k.qcow2");
        await QemuCreateAsync(img, "1M");
        foreach (var args in new[]
        {
            new[] { "img", "convert", "-O", "raw", img, dir.File("o.raw") },
            new[] { "img", "check", img },
            new[] { "img", "dd", "if=" + img, "of=" + dir.File("d.raw") },
            new[] { "img", "compare", img, img },
        })
        {
            var r = await Tools.RunAsync("sharpblock", args);
            // compare answers trouble with 2, as qemu-img compare does; the others with 1.
            Assert.Equal($"Could not open '{img}': Parameter 'encrypt.key-secret' is required for cipher", r.OneLineError(exitCode: args[1] == "compare" ? 2 : 1));
        }

        var missing = await Tools.RunAsync("sharpblock", ["img", "convert", .. Secret(), "--image-opts", ImageOpts(img, "nope"), "-O", "raw", dir.File("o.raw")]);
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("No secret with id 'nope'", missing.Stderr);

        (await Tools.RunAsync("sharpblock", "img", "info", img)).Ok();
        var withKey = (await Tools.RunAsync("sharpblock", ["img", "check", .. Secret(), "--image-opts", ImageOpts(img)])).Ok();
        Assert.Contains("No errors were found on the image.", withKey.Stdout);
        (await Tools.RunAsync("sharpblock", ["img", "compare", .. Secret(), "--image-opts", ImageOpts(img), ImageOpts(img)])).Ok();

        var c = await Tools.RunAsync("sharpblock", ["img", "convert", .. Secret(), "-c", "-O", "qcow2", "-o", "encrypt.format=aes,encrypt.key-secret=sec0", dir.PatternFile("s.raw", 65536), dir.File("c.qcow2")]);
        Assert.Equal(1, c.ExitCode);
        Assert.Contains("Compression and encryption not supported at the same time", c.Stderr);
    }

    [Fact]
    public async Task Without_a_key_the_library_serves_metadata_and_holds_data()
    {
        using var dir = new TempDir();
        string img = dir.File("m.qcow2");
        await QemuCreateAsync(img, "1M");
        (await Tools.RunAsync("qemu-io", [.. Secret(), "--image-opts", ImageOpts(img), "-c", "write -P 0x5a 0 64k"])).Ok();
        (await Tools.RunAsync("qemu-img", ["snapshot", .. Secret(), "-c", "snap", "--image-opts", ImageOpts(img)])).Ok();
        var (g, node) = await OpenAsync(img, readOnly: true, password: null);
        await using (g)
        {
            Assert.True(node.Encrypted);
            Assert.True(node.EncryptionKeyMissing);
            Assert.True(node.KeyRequired);
            Assert.Single(node.Snapshots);
            var check = await node.CheckAsync(ImageCheckMode.None, null);
            Assert.Equal(0, check.Corruptions + check.Leaks);
            var st = await node.GetBlockStatusAsync(0, 1 << 20);
            Assert.True(st.IsData);
            Assert.Equal(65536, st.Length);
            // The host offset of ciphertext is no use to anyone: not reported, as in QEMU.
            Assert.Equal(0, (int)(st.Flags & BlockStatusFlags.OffsetValid));
            Assert.True((await node.GetImageInfoAsync()).Encrypted);

            var ex = await Assert.ThrowsAsync<EncryptionKeyRequiredException>(async () => await node.ReadAsync(0, new byte[512]));
            Assert.Equal(Errno.EACCES, ex.Errno);
            Assert.False(node.KeyProvided.IsCompleted);

            node.SetEncryptionKey(Password);
            Assert.True(node.KeyProvided.IsCompleted);
            Assert.False(node.KeyRequired);
            byte[] b = new byte[4096];
            await node.ReadAsync(0, b);
            Assert.All(b, x => Assert.Equal(0x5a, x));
        }
    }

    [Fact]
    public async Task Luks_images_are_refused_by_name()
    {
        using var dir = new TempDir();
        string img = dir.File("l.qcow2");
        // crypt_method 2 in the header is all it takes (a real LUKS image costs qemu-img a key-stretching benchmark).
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", img, "1M")).Ok();
        using (var fs = new FileStream(img, FileMode.Open))
        {
            fs.Position = 32;
            fs.Write([0, 0, 0, 2]);
        }
        var r = await Tools.RunAsync("sharpblock", "img", "info", img);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("LUKS encryption (crypt_method 2) is not supported", r.Stderr);
    }

    /// <summary>
    /// Parallel writers of unaligned byte runs that share sectors' clusters (each writer owns every fourth
    /// 100-byte slot), plus whole-cluster zeroing and discards, on an encrypted image with a tiny L2 cache: every
    /// copy-on-write, sector merge and zero fill goes through the cipher, so qemu reads back the model exactly.
    /// </summary>
    [Fact]
    public async Task Parallel_unaligned_writers_on_an_encrypted_image_read_back_right_in_qemu()
    {
        using var dir = new TempDir();
        string img = dir.File("par.qcow2");
        const int size = 1 << 20;
        await QemuCreateAsync(img, "1M", ",cluster_size=4096");
        (await Tools.RunAsync("qemu-io", [.. Secret(), "--image-opts", ImageOpts(img), "-c", "write -P 0x3c 200k 300k"])).Ok();
        byte[] model = new byte[size];
        Array.Fill(model, (byte)0x3c, 200 << 10, 300 << 10);

        var g = new BlockGraph();
        try
        {
            var o = ImageFormats.ImageOptions(img, "qcow2", false, "enc");
            o.Qcow2!.L2CacheSize = 8192;
            // Discards are only hints unless the node passes them on; the model counts on them.
            o.Discard = SharpBlock.Schema.BlockdevDiscardOptions.Unmap;
            var node = (Qcow2Node)await g.AddAsync(o);
            node.SetEncryptionKey(Password);
            var tasks = new List<Task>();
            for (int t = 0; t < 4; t++)
            {
                int me = t;
                tasks.Add(Task.Run(async () =>
                {
                    var rnd = new Random(40 + me);
                    for (int i = 0; i < 200; i++)
                    {
                        long slot = (rnd.Next(size / 100 / 4) * 4) + me;
                        long at = slot * 100;
                        // The last cluster of every 8 belongs to the zeroing task.
                        if (at + 100 > size || ((at >> 12) & 7) == 7 || (((at + 99) >> 12) & 7) == 7)
                            continue;
                        byte[] d = new byte[100];
                        Array.Fill(d, (byte)rnd.Next(1, 256));
                        await node.WriteAsync(at, d);
                        lock (model)
                            d.CopyTo(model, at);
                    }
                }));
            }

            tasks.Add(Task.Run(async () =>
            {
                var rnd = new Random(9);
                for (int i = 0; i < 100; i++)
                {
                    long at = ((rnd.Next(size / 4096 / 8) * 8) + 7) * 4096L;
                    byte[] d = new byte[4096];
                    switch (rnd.Next(4))
                    {
                        case 0:
                            await node.WriteZeroesAsync(at, 4096, RequestFlags.MayUnmap);
                            break;
                        case 1:
                            await node.DiscardAsync(at, 4096);
                            break;
                        default:
                            int off = rnd.Next(4000);
                            lock (model)
                                Array.Copy(model, at, d, 0, 4096);
                            byte[] part = new byte[rnd.Next(1, 4096 - off)];
                            rnd.NextBytes(part);
                            part.CopyTo(d, off);
                            await node.WriteAsync(at + off, part);
                            break;
                    }

                    lock (model)
                        d.CopyTo(model, at);
                }
            }));
            await Task.WhenAll(tasks);
            await node.FlushAsync();
        }
        finally
        {
            await g.DisposeAsync();
        }

        await AssertQemuCheckCleanAsync(img);
        byte[] got = await QemuReadAsync(dir, img);
        int diff = model.AsSpan().CommonPrefixLength(got);
        Assert.True(diff == model.Length, $"qemu reads something else than was written, first at {diff}: {(diff < got.Length ? got[diff] : -1)} instead of {(diff < model.Length ? model[diff] : -1)}, length {got.Length}");
    }
}
