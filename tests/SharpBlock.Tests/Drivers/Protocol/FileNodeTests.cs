using SharpBlock.Drivers.Protocol.File;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Io;
using SharpBlock.Schema;
using SharpBlock.Testing;

namespace SharpBlock.Tests.Drivers.Protocol;

public class FileNodeTests
{
    private static NodeSettings Rw(bool direct = false) => NodeSettings.Default with { Direct = direct, Discard = BlockdevDiscardOptions.Unmap };

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Writes_land_on_disk_at_any_offset_and_length(bool direct)
    {
        using var dir = new TempDir();
        string path = dir.PatternFile("a.img", 4 << 20);
        byte[] expected = System.IO.File.ReadAllBytes(path);
        await using (var node = FileNode.Open(path, Rw(direct)))
        {
            var rng = new Random(7);
            for (int i = 0; i < 200; i++)
            {
                int len = rng.Next(1, 20000);
                int off = rng.Next(0, expected.Length - len);
                var data = new byte[len];
                rng.NextBytes(data);
                await node.WriteAsync(off, data);
                data.CopyTo(expected, off);
                var back = new byte[len];
                await node.ReadAsync(off, back);
                Assert.Equal(data, back);
            }

            // Large aligned transfers take the O_DIRECT path in chunks.
            var big = new byte[3 << 19];
            rng.NextBytes(big);
            await node.WriteAsync(4096, big);
            big.CopyTo(expected, 4096);
            await node.FlushAsync();
        }

        Assert.Equal(expected, System.IO.File.ReadAllBytes(path));
    }

    [Fact]
    public async Task Reads_past_end_of_file_return_zeros_and_writes_grow_the_file()
    {
        using var dir = new TempDir();
        string path = dir.PatternFile("a.img", 1000);
        await using var node = FileNode.Open(path, Rw());
        var buf = new byte[2000];
        Array.Fill(buf, (byte)0xAA);
        await node.ReadAsync(0, buf);
        Assert.All(buf[1000..], b => Assert.Equal(0, b));

        await node.WriteAsync(5000, new byte[] { 1, 2, 3 });
        Assert.Equal(5003, node.Length);
        Assert.Equal(5003, new FileInfo(path).Length);
    }

    [Fact]
    public async Task Write_zeroes_with_unmap_punches_a_hole()
    {
        using var dir = new TempDir();
        string path = dir.PatternFile("a.img", 4 << 20);
        await using var node = FileNode.Open(path, Rw());
        await node.WriteZeroesAsync(1 << 20, 2 << 20, RequestFlags.MayUnmap);
        var st = await node.GetBlockStatusAsync(1 << 20, 2 << 20);
        Assert.True(st.IsZero);
        Assert.Equal(2 << 20, st.Length);
        var data = await node.GetBlockStatusAsync(0, 4 << 20);
        Assert.True(data.IsData);
        Assert.Equal(1 << 20, data.Length);
        var buf = new byte[2 << 20];
        await node.ReadAsync(1 << 20, buf);
        Assert.DoesNotContain(buf, b => b != 0);
        // The hole frees space on disk.
        Assert.True(await node.GetAllocatedFileSizeAsync() <= (2 << 20) + 65536);
    }

    [Fact]
    public async Task Write_zeroes_without_unmap_reads_back_zeros()
    {
        using var dir = new TempDir();
        string path = dir.PatternFile("a.img", 1 << 20);
        await using var node = FileNode.Open(path, NodeSettings.Default);
        await node.WriteZeroesAsync(100, 5000);
        var bytes = System.IO.File.ReadAllBytes(path);
        Assert.DoesNotContain(bytes.AsSpan(100, 5000).ToArray(), b => b != 0);
        Assert.NotEqual(0, bytes[99]);
        Assert.NotEqual(0, bytes[5100]);
    }

    [Fact]
    public async Task Discard_is_ignored_unless_discard_is_unmap()
    {
        using var dir = new TempDir();
        string path = dir.PatternFile("a.img", 1 << 20);
        await using (var node = FileNode.Open(path, NodeSettings.Default))
            await node.DiscardAsync(0, 1 << 20);
        Assert.Contains(System.IO.File.ReadAllBytes(path), b => b != 0);
        await using (var node = FileNode.Open(path, Rw()))
            await node.DiscardAsync(0, 1 << 20);
        Assert.DoesNotContain(System.IO.File.ReadAllBytes(path), b => b != 0);
    }

    [Fact]
    public async Task Truncate_changes_the_file_size()
    {
        using var dir = new TempDir();
        string path = dir.PatternFile("a.img", 1 << 20);
        await using var node = FileNode.Open(path, NodeSettings.Default);
        await node.TruncateAsync(3 << 20);
        Assert.Equal(3 << 20, new FileInfo(path).Length);
        await node.TruncateAsync(4096);
        Assert.Equal(4096, node.Length);
        Assert.Equal(4096, new FileInfo(path).Length);
    }

    [Fact]
    public async Task Read_only_node_refuses_writes_with_EPERM()
    {
        using var dir = new TempDir();
        string path = dir.PatternFile("a.img", 4096);
        await using var node = FileNode.Open(path, NodeSettings.Default with { ReadOnly = true });
        var ex = await Assert.ThrowsAsync<BlockException>(async () => await node.WriteAsync(0, new byte[1]));
        Assert.Equal(Errno.EPERM, ex.Errno);
    }

    [Fact]
    public void Opening_a_missing_file_names_it_and_the_reason()
    {
        // The file driver's own words, as QEMU's; not yet an image failure, so a tool that opened an image over
        // the file still puts the image's name in front ("Could not open 'IMG': Could not open 'FILE': ...").
        var ex = Assert.Throws<BlockException>(() => FileNode.Open("/nonexistent/x.img", NodeSettings.Default));
        Assert.Equal(Errno.ENOENT, ex.Errno);
        Assert.Equal("Could not open '/nonexistent/x.img': No such file or directory", ex.Message);
        Assert.Equal("Could not open 'top.qcow2': Could not open '/nonexistent/x.img': No such file or directory", ImageOpenException.Wrap("top.qcow2", ex).Message);
    }

    [Fact]
    public async Task The_same_image_cannot_be_opened_read_write_twice()
    {
        using var dir = new TempDir();
        string path = dir.PatternFile("a.img", 4096);
        await using var first = FileNode.Open(path, NodeSettings.Default);
        var ex = Assert.Throws<ImageLockException>(() => FileNode.Open(path, NodeSettings.Default));
        Assert.Equal("Failed to get \"write\" lock", ex.Message);
        Assert.Equal(path, ex.Path);
        // A plain reader may join a writer (raw data, as QEMU's raw readers do); one under an image format
        // needs the file to hold still and is refused, unless it accepts what it gets (force-share, -U).
        await using var reader = FileNode.Open(path, NodeSettings.Default with { ReadOnly = true });
        var formatReader = FileNode.Open(path, NodeSettings.Default with { ReadOnly = true });
        await using (formatReader)
        {
            ex = Assert.Throws<ImageLockException>(formatReader.RefuseOtherWriters);
            Assert.Equal("Failed to get shared \"write\" lock", ex.Message);
        }

        await using var sharing = FileNode.Open(path, NodeSettings.Default with { ReadOnly = true, ForceShare = true });
        sharing.RefuseOtherWriters();
    }

    [Fact]
    public async Task A_reader_reopened_read_write_is_not_refused_by_its_own_old_lock()
    {
        using var dir = new TempDir();
        string path = dir.PatternFile("a.img", 4096);
        await using var node = FileNode.Open(path, NodeSettings.Default with { ReadOnly = true });
        node.RefuseOtherWriters();
        await node.ReopenAsync(readOnly: false);
        Assert.False(node.ReadOnly);
        var ex = Assert.Throws<ImageLockException>(() => FileNode.Open(path, NodeSettings.Default));
        Assert.Equal("Failed to get \"write\" lock", ex.Message);
        await node.ReopenAsync(readOnly: true);
        await using var second = FileNode.Open(path, NodeSettings.Default with { ReadOnly = true });
        second.RefuseOtherWriters();
    }

    [Fact]
    public async Task Readers_share_an_image_and_the_lock_goes_with_close()
    {
        using var dir = new TempDir();
        string path = dir.PatternFile("a.img", 4096);
        var ro = NodeSettings.Default with { ReadOnly = true };
        await using (FileNode.Open(path, ro))
        await using (FileNode.Open(path, ro))
        {
        }

        await using var rw = FileNode.Open(path, NodeSettings.Default);
        Assert.False(rw.ReadOnly);
    }
}
