using System.Globalization;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Vvfat;

/// <summary>
/// vvfat with rw: a client changes the FAT volume over NBD (the changes made by mtools on a copy, then
/// written back sector by sector with qemu-io, as a guest's file system driver would write them), and the
/// flush brings the host directory to match: new, changed, renamed and deleted files, new and removed
/// directories. A volume that cannot be mapped back fails the flush and leaves the directory alone.
/// </summary>
public class VvfatWriteBackTests
{
    private const long PartitionOffset = 63 * 512;

    private static Task<Tools.Result> Mtools(string tool, params string[] args) =>
        Tools.RunAsync("env", ["MTOOLS_SKIP_CHECK=1", Tools.Require(tool), .. args]);

    private static string Vol(string disk) => disk + "@@" + PartitionOffset.ToString(CultureInfo.InvariantCulture);

    /// <summary>Writes every 512-byte sector that differs between the two files to the export, then flushes.</summary>
    private static async Task<Tools.Result> WriteDifferencesAsync(TempDir dir, string before, string after, string url)
    {
        byte[] a = await File.ReadAllBytesAsync(before), b = await File.ReadAllBytesAsync(after);
        var cmds = new List<string>();
        for (int s = 0; s < a.Length / 512; s++)
        {
            if (a.AsSpan(s * 512, 512).SequenceEqual(b.AsSpan(s * 512, 512)))
                continue;
            string chunk = dir.File($"sector-{s}");
            await File.WriteAllBytesAsync(chunk, b.AsSpan(s * 512, 512).ToArray());
            cmds.Add("-c");
            cmds.Add($"write -s {chunk} {s * 512} 512");
        }

        Assert.NotEmpty(cmds);
        // Writeback: qemu-io's default writethrough would send every sector with FUA, a write-back per sector.
        return await Tools.RunAsync("qemu-io", ["-f", "raw", "-t", "writeback", .. cmds, "-c", "flush", url]);
    }

    private static async Task<(System.Diagnostics.Process Daemon, string Url)> StartAsync(TempDir dir, string tree)
    {
        string qmp = dir.File("qmp.sock"), nbd = dir.File("nbd.sock");
        var p = Tools.StartSharpBlock("daemon", "--qmp", "unix:" + qmp,
            "--blockdev", $"driver=vvfat,node-name=v0,dir={tree},fat-type=12,rw=on",
            "--nbd-server", $"addr.type=unix,addr.path={nbd}",
            "--export", "type=nbd,id=e0,node-name=v0,name=fat,writable=on");
        await SocketWait.ForListenerAsync(qmp);
        return (p, $"nbd+unix:///fat?socket={nbd}");
    }

    [Fact]
    public async Task Changes_made_on_the_volume_reach_the_directory_at_flush()
    {
        using var dir = new TempDir();
        string tree = Path.Combine(dir.Path, "tree");
        Directory.CreateDirectory(Path.Combine(tree, "docs"));
        Directory.CreateDirectory(Path.Combine(tree, "old dir"));
        File.WriteAllText(Path.Combine(tree, "keep.txt"), "unchanged\n");
        File.WriteAllText(Path.Combine(tree, "change me.txt"), "before\n");
        File.WriteAllText(Path.Combine(tree, "delete me.txt"), "bye\n");
        File.WriteAllText(Path.Combine(tree, "docs", "Rename Me.md"), "moving\n");
        byte[] big = new byte[200_000];
        new Random(7).NextBytes(big);
        File.WriteAllBytes(Path.Combine(tree, "big.bin"), big);
        byte[] fresh = new byte[50_000];
        new Random(8).NextBytes(fresh);
        string freshSrc = dir.File("fresh.bin");
        File.WriteAllBytes(freshSrc, fresh);
        string changed = dir.File("changed.txt");
        File.WriteAllText(changed, "after, and longer than before\n");

        var (p, url) = await StartAsync(dir, tree);
        try
        {
            string before = dir.File("before.raw"), after = dir.File("after.raw");
            (await Tools.RunAsync("nbdcopy", url, before)).Ok();
            File.Copy(before, after);
            string vol = Vol(after);
            (await Mtools("mmd", "-i", vol, "::/New Folder")).Ok();
            (await Mtools("mcopy", "-i", vol, freshSrc, "::/New Folder/A Fresh File.bin")).Ok();
            (await Mtools("mcopy", "-i", vol, "-o", changed, "::/change me.txt")).Ok();
            (await Mtools("mdel", "-i", vol, "::/delete me.txt")).Ok();
            (await Mtools("mren", "-i", vol, "::/docs/Rename Me.md", "::/docs/Renamed.md")).Ok();
            (await Mtools("mrd", "-i", vol, "::/old dir")).Ok();

            var w = await WriteDifferencesAsync(dir, before, after, url);
            Assert.True(w.ExitCode == 0 && !w.Stdout.Contains("failed", StringComparison.Ordinal), w.Stdout + w.Stderr);

            Assert.Equal(fresh, File.ReadAllBytes(Path.Combine(tree, "New Folder", "A Fresh File.bin")));
            Assert.Equal("after, and longer than before\n", File.ReadAllText(Path.Combine(tree, "change me.txt")));
            Assert.False(File.Exists(Path.Combine(tree, "delete me.txt")));
            Assert.False(File.Exists(Path.Combine(tree, "docs", "Rename Me.md")));
            Assert.Equal("moving\n", File.ReadAllText(Path.Combine(tree, "docs", "Renamed.md")));
            Assert.False(Directory.Exists(Path.Combine(tree, "old dir")));
            Assert.Equal("unchanged\n", File.ReadAllText(Path.Combine(tree, "keep.txt")));
            Assert.Equal(big, File.ReadAllBytes(Path.Combine(tree, "big.bin")));
            Assert.Empty(Directory.EnumerateFiles(tree, "*.sharpblock-vvfat", SearchOption.AllDirectories));

            // The disk still reads as the client left it, and is clean.
            string now = dir.File("now.raw");
            (await Tools.RunAsync("nbdcopy", url, now)).Ok();
            Assert.Equal(await File.ReadAllBytesAsync(after), await File.ReadAllBytesAsync(now));
        }
        finally
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task A_volume_with_another_layout_fails_the_flush_and_leaves_the_directory_alone()
    {
        using var dir = new TempDir();
        string tree = Path.Combine(dir.Path, "tree");
        Directory.CreateDirectory(tree);
        File.WriteAllText(Path.Combine(tree, "precious.txt"), "keep me\n");
        var (p, url) = await StartAsync(dir, tree);
        try
        {
            string before = dir.File("before.raw"), after = dir.File("after.raw");
            (await Tools.RunAsync("nbdcopy", url, before)).Ok();
            File.Copy(before, after);
            // The file deleted, and the boot sector given another cluster size, as a reformat would: a volume
            // that no longer matches the layout is not written back at all, so the file stays.
            (await Mtools("mdel", "-i", Vol(after), "::/precious.txt")).Ok();
            await using (var f = new FileStream(after, FileMode.Open))
            {
                f.Position = PartitionOffset + 13;
                f.WriteByte(4);
            }

            var w = await WriteDifferencesAsync(dir, before, after, url);
            // qemu-io says nothing about a failed flush; its exit code does.
            Assert.True(w.ExitCode != 0, w.Stdout + w.Stderr);
            Assert.Equal("keep me\n", File.ReadAllText(Path.Combine(tree, "precious.txt")));
            Assert.Single(Directory.EnumerateFileSystemEntries(tree));
            // The daemon keeps serving.
            (await Tools.RunAsync("nbdinfo", url)).Ok();
        }
        finally
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
        }
    }
}
