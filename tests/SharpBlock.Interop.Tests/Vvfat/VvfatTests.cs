using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Vvfat;

/// <summary>
/// vvfat: a host directory as a FAT disk. The disk we present is judged by Debian's dosfstools (fsck.fat
/// finds nothing to fix) and mtools (every long name listed, every file copied out equals the host file),
/// and by QEMU 7.2's own vvfat where it works (FAT12, FAT16, floppies): the same size, the MBR and boot
/// sector byte for byte, the same files.
/// </summary>
public class VvfatTests
{
    /// <summary>Names a FAT layer has to work for: long, mixed case, clashing short forms, Unicode, dots, nested, empty and large files.</summary>
    private static Dictionary<string, byte[]> MakeTree(TempDir dir, bool links = true)
    {
        var files = new Dictionary<string, byte[]>(StringComparer.Ordinal)
        {
            ["a.txt"] = "hello\n"u8.ToArray(),
            ["README"] = "plain 8.3 name\n"u8.ToArray(),
            ["Long File Name.txt"] = "long\n"u8.ToArray(),
            ["Long File Name 2.txt"] = "long two\n"u8.ToArray(),
            ["longfilename.text"] = "clash\n"u8.ToArray(),
            ["Grüße ünd ñ.txt"] = "unicode\n"u8.ToArray(),
            ["archive.tar.gz"] = "dots\n"u8.ToArray(),
            [".hidden"] = "dotfile\n"u8.ToArray(),
            ["empty"] = [],
            ["sub/inner.dat"] = "inner\n"u8.ToArray(),
            ["sub/deeper/very long directory name here/leaf.bin"] = [1, 2, 3],
        };
        var big = new byte[300_001];
        new Random(16).NextBytes(big);
        files["big.bin"] = big;
        foreach (var (name, data) in files)
        {
            string path = Path.Combine(dir.Path, "tree", name);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllBytes(path, data);
        }

        // Links: to a file (served as the file), dangling (left out), and back up the tree (left out, or
        // the tree would never end; QEMU follows it until the disk is full, so not with QEMU).
        if (!links)
            return files;
        File.CreateSymbolicLink(Path.Combine(dir.Path, "tree", "link-to-a"), Path.Combine(dir.Path, "tree", "a.txt"));
        File.CreateSymbolicLink(Path.Combine(dir.Path, "tree", "dangling"), Path.Combine(dir.Path, "nowhere"));
        Directory.CreateSymbolicLink(Path.Combine(dir.Path, "tree", "sub", "loop"), Path.Combine(dir.Path, "tree"));
        files["link-to-a"] = files["a.txt"];
        return files;
    }

    private static Task<Tools.Result> Mtools(string tool, params string[] args) =>
        Tools.RunAsync("env", ["MTOOLS_SKIP_CHECK=1", Tools.Require(tool), .. args]);

    /// <summary>The FAT volume of a disk image as a file of its own (fsck.fat has no offset option).</summary>
    private static async Task<string> VolumeAsync(TempDir dir, string disk, bool floppy)
    {
        if (floppy)
            return disk;
        string vol = dir.File(Path.GetFileNameWithoutExtension(disk) + ".vol");
        (await Tools.RunAsync("dd", $"if={disk}", $"of={vol}", "bs=1M", "iflag=skip_bytes", "skip=32256", "conv=sparse", "status=none")).Ok();
        return vol;
    }

    [Theory]
    [InlineData("fat:12:", false)]
    [InlineData("fat:16:", false)]
    [InlineData("fat:", false)]
    [InlineData("fat:32:", false)]
    [InlineData("fat:floppy:", true)]
    [InlineData("fat:floppy:12:", true)]
    public async Task The_disk_is_a_clean_fat_volume_holding_the_directory(string prefix, bool floppy)
    {
        using var dir = new TempDir();
        var files = MakeTree(dir);
        string tree = Path.Combine(dir.Path, "tree");
        string disk = dir.File("ours.raw");
        (await Tools.RunAsync("sharpblock", "img", "convert", "-f", "raw", prefix + tree, "-O", "raw", disk)).Ok();
        string vol = await VolumeAsync(dir, disk, floppy);

        var fsck = await Tools.RunAsync("fsck.fat", "-n", "-V", vol);
        Assert.True(fsck.ExitCode == 0, fsck.Stdout + fsck.Stderr);
        Assert.DoesNotContain("Fixing", fsck.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("Leaving filesystem unchanged", fsck.Stdout, StringComparison.Ordinal);

        var listing = (await Mtools("mdir", "-i", vol, "-/", "-b", "::")).Ok().Stdout;
        foreach (var (name, data) in files)
        {
            Assert.Contains("::/" + name, listing, StringComparison.Ordinal);
            string copy = dir.File("out-" + Guid.NewGuid().ToString("N"));
            (await Mtools("mcopy", "-i", vol, "-n", "::/" + name, copy)).Ok();
            Assert.Equal(data, await File.ReadAllBytesAsync(copy));
        }

        var label = (await Mtools("mlabel", "-i", vol, "-s", "::")).Ok().Stdout;
        Assert.Contains("QEMU VVFAT", label, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("fat:12:", false)]
    [InlineData("fat:16:", false)]
    [InlineData("fat:floppy:", true)]
    [InlineData("fat:floppy:12:", true)]
    public async Task Qemu_presents_the_same_disk_where_its_vvfat_works(string prefix, bool floppy)
    {
        using var dir = new TempDir();
        MakeTree(dir, links: false);
        string tree = Path.Combine(dir.Path, "tree");
        string ours = dir.File("ours.raw"), theirs = dir.File("theirs.raw");
        (await Tools.RunAsync("sharpblock", "img", "convert", "-f", "raw", prefix + tree, "-O", "raw", ours)).Ok();
        (await Tools.RunAsync("qemu-img", "convert", "-f", "raw", prefix + tree, "-O", "raw", theirs)).Ok();
        byte[] a = await File.ReadAllBytesAsync(ours), b = await File.ReadAllBytesAsync(theirs);
        Assert.Equal(b.Length, a.Length);
        int boot = floppy ? 0 : 63 * 512;
        Assert.Equal(b.AsSpan(0, boot + 512).ToArray(), a.AsSpan(0, boot + 512).ToArray());

        // The same files with the same names, whatever order each lays them out in.
        string va = await VolumeAsync(dir, ours, floppy), vb = await VolumeAsync(dir, theirs, floppy);
        var la = (await Mtools("mdir", "-i", va, "-/", "-b", "::")).Ok().Stdout.Split('\n').Order(StringComparer.Ordinal);
        var lb = (await Mtools("mdir", "-i", vb, "-/", "-b", "::")).Ok().Stdout.Split('\n').Order(StringComparer.Ordinal);
        Assert.Equal(lb, la);

        var infoOurs = (await Tools.RunAsync("sharpblock", "img", "info", prefix + tree)).Ok().Stdout;
        var infoTheirs = (await Tools.RunAsync("qemu-img", "info", prefix + tree)).Ok().Stdout;
        Assert.Equal(Line(infoTheirs, "virtual size:"), Line(infoOurs, "virtual size:"));
        Assert.Equal(Line(infoTheirs, "file format:"), Line(infoOurs, "file format:"));
    }

    private static string Line(string text, string prefix) => text.Split('\n').First(l => l.StartsWith(prefix, StringComparison.Ordinal));

    [Fact]
    public async Task The_daemon_exports_the_directory_over_nbd_and_refuses_what_qemu_refuses()
    {
        using var dir = new TempDir();
        MakeTree(dir);
        string tree = Path.Combine(dir.Path, "tree");
        string disk = dir.File("img.raw");
        (await Tools.RunAsync("sharpblock", "img", "convert", "-f", "raw", "fat:16:" + tree, "-O", "raw", disk)).Ok();

        foreach (var (opts, message) in (ValueTuple<string, string>[])[
            ($"dir={tree}", "Image is read-only"),
            ($"dir={tree},read-only=on,fat-type=13", "Valid FAT types are only 12, 16 and 32"),
            ($"dir={tree},read-only=on,label=ABCDEFGHIJKL", "vvfat label cannot be longer than 11 bytes"),
            ($"dir={dir.File("missing")},read-only=on", "Could not read directory " + dir.File("missing"))])
        {
            var theirs = await Tools.RunAsync("qemu-storage-daemon", "--blockdev", $"driver=vvfat,node-name=v0,{opts}");
            Assert.Contains(message, theirs.Stderr, StringComparison.Ordinal);
            var ours = await Tools.RunAsync("sharpblock", "daemon", "--blockdev", $"driver=vvfat,node-name=v0,{opts}");
            Assert.NotEqual(0, ours.ExitCode);
            Assert.Contains(message, ours.Stderr, StringComparison.Ordinal);
        }

        string qmp = dir.File("qmp.sock"), nbd = dir.File("nbd.sock");
        using var p = Tools.StartSharpBlock("daemon", "--qmp", "unix:" + qmp,
            "--blockdev", $"driver=vvfat,node-name=v0,dir={tree},fat-type=16,read-only=on,label=SHARED",
            "--nbd-server", $"addr.type=unix,addr.path={nbd}",
            "--export", "type=nbd,id=e0,node-name=v0,name=fat");
        try
        {
            await SocketWait.ForListenerAsync(qmp);
            string copied = dir.File("nbd.raw");
            (await Tools.RunAsync("nbdcopy", $"nbd+unix:///fat?socket={nbd}", copied)).Ok();
            byte[] served = await File.ReadAllBytesAsync(copied), converted = await File.ReadAllBytesAsync(disk);
            Assert.Equal(converted.Length, served.Length);
            // The label is the one difference: in the boot sector and the root's first entry.
            string vol = await VolumeAsync(dir, copied, floppy: false);
            Assert.Contains("SHARED", (await Mtools("mlabel", "-i", vol, "-s", "::")).Ok().Stdout, StringComparison.Ordinal);
            Assert.Equal(0, (await Tools.RunAsync("fsck.fat", "-n", vol)).ExitCode);
        }
        finally
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
        }
    }
}
