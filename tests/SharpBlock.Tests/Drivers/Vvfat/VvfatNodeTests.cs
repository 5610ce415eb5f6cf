using SharpBlock.Drivers.Protocol.Vvfat;
using SharpBlock.Graph;
using SharpBlock.Testing;

namespace SharpBlock.Tests.Drivers.Vvfat;

/// <summary>The vvfat node in process: layout sizes, read-only refusals, and the rw overlay reading back what was written.</summary>
public class VvfatNodeTests
{
    [Fact]
    public async Task Writes_anywhere_read_back_and_a_flush_of_an_unchanged_volume_touches_nothing()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("a.txt"), "hello\n");
        var node = VvfatNode.Open(dir.Path, 12, floppy: false, rw: true, label: null, NodeSettings.Default);
        await using (node)
        {
            Assert.Equal(33030144, node.Length);
            byte[] before = new byte[512];
            await node.ReadAsync(32768, before);
            // Rewriting the FAT sector with its own bytes, and a free data sector with noise.
            await node.WriteAsync(32768, before);
            byte[] noise = new byte[1024];
            new Random(3).NextBytes(noise);
            await node.WriteAsync(20_000_000, noise);
            byte[] back = new byte[1024];
            await node.ReadAsync(20_000_000, back);
            Assert.Equal(noise, back);
            await node.FlushAsync();
            Assert.Equal(["a.txt"], Directory.EnumerateFileSystemEntries(dir.Path).Select(Path.GetFileName));
            Assert.Equal("hello\n", File.ReadAllText(dir.File("a.txt")));
        }
    }

    [Fact]
    public async Task A_changed_boot_sector_fails_the_flush_and_the_directory_stays()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("a.txt"), "hello\n");
        var node = VvfatNode.Open(dir.Path, 12, floppy: false, rw: true, label: null, NodeSettings.Default);
        await using (node)
        {
            await node.WriteAsync((63 * 512) + 13, new byte[] { 4 });
            var e = await Assert.ThrowsAnyAsync<SharpBlock.Errors.BlockException>(async () => await node.FlushAsync());
            Assert.Contains("boot sector", e.Message, StringComparison.Ordinal);
        }

        Assert.Equal("hello\n", File.ReadAllText(dir.File("a.txt")));
    }

    [Fact]
    public void The_json_name_holds_any_directory_name()
    {
        using var dir = new TempDir();
        string odd = Path.Combine(dir.Path, "a \"quoted\" \\ dir");
        Directory.CreateDirectory(odd);
        var node = VvfatNode.Open(odd, 16, floppy: false, rw: false, label: null, NodeSettings.Default with { ReadOnly = true });
        using var doc = System.Text.Json.JsonDocument.Parse(node.Filename["json:".Length..]);
        Assert.Equal(odd, doc.RootElement.GetProperty("dir").GetString());
    }

    [Fact]
    public void Without_rw_a_writable_open_is_refused_as_qemu_refuses_it()
    {
        using var dir = new TempDir();
        var e = Assert.ThrowsAny<SharpBlock.Errors.BlockException>(() => VvfatNode.Open(dir.Path, 16, false, false, null, NodeSettings.Default));
        Assert.Equal("Image is read-only", e.Message);
    }
}
