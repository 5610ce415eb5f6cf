using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;
using SharpBlock.Testing;

namespace SharpBlock.Tests.Graph;

public class BlockGraphTests
{
    private static BlockdevOptions RawOnFile(string path, string? id = "d0", string? nodeName = null, bool readOnly = false) => new()
    {
        Driver = BlockdevDriver.Raw,
        Id = id,
        NodeName = nodeName,
        ReadOnly = readOnly,
        Raw = new BlockdevOptionsGenericFormat
        {
            File = new BlockdevRef { Definition = new BlockdevOptions { Driver = BlockdevDriver.File, File = new BlockdevOptionsFile { Filename = path } } },
        },
    };

    [Fact]
    public async Task A_device_reads_and_writes_its_image_and_counts_it()
    {
        using var dir = new TempDir();
        string path = dir.PatternFile("a.img", 1 << 20);
        await using var graph = new BlockGraph();
        await graph.AddAsync(RawOnFile(path));
        var dev = graph.FindDevice("d0")!;
        var data = new byte[4096];
        new Random(3).NextBytes(data);
        await dev.WriteAsync(8192, data);
        var back = new byte[4096];
        await dev.ReadAsync(8192, back);
        Assert.Equal(data, back);
        await dev.FlushAsync();
        Assert.Equal(4096, dev.Stats.WriteBytes);
        Assert.Equal(1, dev.Stats.ReadOperations);
        Assert.Equal(1, dev.Stats.FlushOperations);
        Assert.Equal(8192 + 4096, dev.Stats.WriteHighestOffset);
        Assert.True(dev.Stats.WriteTotalTimeNs > 0);
        // The file node below counted the same traffic.
        Assert.Equal(4096, dev.Root!.File!.Stats.WriteBytes);
    }

    [Fact]
    public async Task Requests_past_the_end_of_a_device_are_refused()
    {
        using var dir = new TempDir();
        await using var graph = new BlockGraph();
        await graph.AddAsync(RawOnFile(dir.PatternFile("a.img", 4096)));
        var ex = await Assert.ThrowsAsync<BlockException>(async () => await graph.FindDevice("d0")!.WriteAsync(4000, new byte[100]));
        Assert.Equal(Errno.EINVAL, ex.Errno);
    }

    [Fact]
    public async Task Children_inherit_read_only_and_nodes_get_generated_names()
    {
        using var dir = new TempDir();
        await using var graph = new BlockGraph();
        var root = await graph.AddAsync(RawOnFile(dir.PatternFile("a.img", 4096), readOnly: true));
        Assert.True(root.ReadOnly);
        Assert.True(root.File!.ReadOnly);
        Assert.StartsWith("#block", root.NodeName, StringComparison.Ordinal);
        Assert.Equal(2, graph.Nodes.Count);
    }

    [Fact]
    public async Task Duplicate_names_and_missing_ids_are_refused_and_nothing_stays_open()
    {
        using var dir = new TempDir();
        string path = dir.PatternFile("a.img", 4096);
        await using var graph = new BlockGraph();
        await graph.AddAsync(RawOnFile(path, id: null, nodeName: "n0"));
        var dup = await Assert.ThrowsAsync<BlockException>(async () => await graph.AddAsync(RawOnFile(dir.PatternFile("b.img", 4096), id: null, nodeName: "n0")));
        Assert.Equal("Duplicate nodes with node-name='n0'", dup.Message);
        var none = await Assert.ThrowsAsync<BlockException>(async () => await graph.AddAsync(RawOnFile(dir.PatternFile("c.img", 4096), id: null)));
        Assert.Contains("needs an 'id' or a 'node-name'", none.Message, StringComparison.Ordinal);
        // A failed add closes what it opened: the file can be opened read-write again.
        await graph.AddAsync(RawOnFile(dir.File("b.img"), id: "d1"));
        Assert.Equal(4, graph.Nodes.Count);
    }

    [Fact]
    public async Task Delete_refuses_a_node_in_use_and_closes_an_unused_one()
    {
        using var dir = new TempDir();
        string path = dir.PatternFile("a.img", 4096);
        await using var graph = new BlockGraph();
        var root = await graph.AddAsync(RawOnFile(path, id: null, nodeName: "fmt"));
        // A child opened inline is not the user's to delete (QEMU 7.2: not owned by the monitor).
        var inline = await Assert.ThrowsAsync<BlockException>(async () => await graph.DeleteAsync(root.File!.NodeName));
        Assert.Equal(Errno.EPERM, inline.Errno);
        Assert.Equal($"Node {root.File!.NodeName} is not owned by the monitor", inline.Message);
        // A node blockdev-add made is, but not while another node uses it.
        var file = await graph.AddAsync(new BlockdevOptions
        {
            Driver = BlockdevDriver.File,
            NodeName = "f1",
            File = new BlockdevOptionsFile { Filename = dir.PatternFile("b.img", 4096) },
        });
        await graph.AddAsync(new BlockdevOptions
        {
            Driver = BlockdevDriver.Raw,
            NodeName = "fmt1",
            Raw = new BlockdevOptionsGenericFormat { File = new BlockdevRef { Reference = "f1" } },
        });
        var busy = await Assert.ThrowsAsync<BlockException>(async () => await graph.DeleteAsync("f1"));
        Assert.Equal(Errno.EBUSY, busy.Errno);
        Assert.Equal("Block device f1 is in use", busy.Message);
        await graph.DeleteAsync("fmt1");
        Assert.False(file.IsClosed);
        await graph.DeleteAsync("f1");
        Assert.True(file.IsClosed);
        await graph.DeleteAsync("fmt");
        Assert.Empty(graph.Nodes);
        // The lock is gone with the node.
        await graph.AddAsync(RawOnFile(path));
    }

    [Fact]
    public async Task Eject_closes_the_medium_and_later_requests_fail_with_ENOMEDIUM()
    {
        using var dir = new TempDir();
        await using var graph = new BlockGraph();
        await graph.AddAsync(RawOnFile(dir.PatternFile("a.img", 4096)));
        var dev = graph.FindDevice("d0")!;
        await dev.EjectAsync();
        Assert.Null(dev.Root);
        Assert.Empty(graph.Nodes);
        var ex = await Assert.ThrowsAsync<BlockException>(async () => await dev.ReadAsync(0, new byte[512]));
        Assert.Equal(Errno.ENOMEDIUM, ex.Errno);
    }

    [Fact]
    public async Task A_device_is_a_seekable_stream()
    {
        using var dir = new TempDir();
        string path = dir.PatternFile("a.img", 65536);
        await using var graph = new BlockGraph();
        await graph.AddAsync(RawOnFile(path));
        await using var stream = graph.FindDevice("d0")!.AsStream();
        Assert.Equal(65536, stream.Length);
        stream.Seek(100, SeekOrigin.Begin);
        await stream.WriteAsync(new byte[] { 9, 8, 7 });
        stream.Position = 100;
        var buf = new byte[3];
        Assert.Equal(3, await stream.ReadAsync(buf));
        Assert.Equal(new byte[] { 9, 8, 7 }, buf);
        stream.Position = 65530;
        Assert.Equal(6, await stream.ReadAsync(new byte[100]));
        await stream.FlushAsync();
        Assert.Equal(new byte[] { 9, 8, 7 }, System.IO.File.ReadAllBytes(path)[100..103]);
    }

    [Fact]
    public async Task Detect_zeroes_unmap_turns_zero_writes_into_holes()
    {
        using var dir = new TempDir();
        string path = dir.PatternFile("a.img", 4 << 20);
        await using var graph = new BlockGraph();
        var o = RawOnFile(path);
        o.DetectZeroes = BlockdevDetectZeroesOptions.Unmap;
        o.Discard = BlockdevDiscardOptions.Unmap;
        await graph.AddAsync(o);
        var dev = graph.FindDevice("d0")!;
        await dev.WriteAsync(1 << 20, new byte[1 << 20]);
        var st = await dev.Root!.File!.GetBlockStatusAsync(1 << 20, 1 << 20);
        Assert.True(st.IsZero, "a zero write with detect-zeroes=unmap leaves a hole");
    }
}
