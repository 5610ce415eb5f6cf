using System.Text.Json;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Io;
using SharpBlock.Nbd.Client;
using SharpBlock.Qmp.Schema;

namespace SharpBlock.Nbd.Tests.Client;

/// <summary>The nbd driver against our own server over a real Unix socket.</summary>
public class NbdClientNodeTests
{
    private static async Task<BlockNode> OpenAsync(BlockGraph graph, string socket, string export, bool readOnly = false)
    {
        string json = "{\"driver\":\"nbd\",\"node-name\":\"n0\",\"discard\":\"unmap\",\"read-only\":" + (readOnly ? "true" : "false")
            + ",\"server\":{\"type\":\"unix\",\"data\":{\"path\":\"" + socket + "\"}},\"export\":\"" + export + "\"}";
        using var doc = JsonDocument.Parse(json);
        return await graph.AddAsync(QapiCodec.ReadBlockdevOptions(doc.RootElement, "", false));
    }

    private static BlockGraph ClientGraph()
    {
        var r = BlockDriverRegistry.CreateDefault();
        NbdClientDriver.Register(r);
        return new BlockGraph(r);
    }

    [Fact]
    public async Task Reads_writes_zeroes_trim_flush_and_block_status()
    {
        await using var s = await NbdTestServer.StartAsync();
        string path = s.Dir.File("d.raw");
        using (var f = File.Create(path))
            f.SetLength(4 << 20);
        await s.ExportFileAsync("d", path, writable: true, extra: ",\"discard\":\"unmap\"");
        await using var graph = ClientGraph();
        var node = await OpenAsync(graph, s.Socket, "d");
        Assert.Equal(4 << 20, node.Length);
        Assert.Equal("nbd", node.DriverName);
        Assert.Equal($"nbd+unix:///d?socket={s.Socket}", node.Filename);

        var data = new byte[3 << 20];
        new Random(5).NextBytes(data);
        await node.WriteAsync(512 << 10, data, RequestFlags.Fua);
        var back = new byte[data.Length];
        await node.ReadAsync(512 << 10, back);
        Assert.Equal(data, back);

        await node.WriteZeroesAsync(1 << 20, 4096);
        await node.DiscardAsync(2 << 20, 1 << 20);
        await node.FlushAsync();

        var disk = File.ReadAllBytes(path);
        Assert.Equal(data[..(512 << 10)], disk[(512 << 10)..(1 << 20)]);
        Assert.All(disk[(1 << 20)..((1 << 20) + 4096)], b => Assert.Equal(0, b));
        Assert.All(disk[(2 << 20)..(3 << 20)], b => Assert.Equal(0, b));

        var st = await node.GetBlockStatusAsync(0, 4 << 20);
        Assert.True(st.IsZero);
        Assert.False(st.IsData);
        Assert.Equal(512 << 10, st.Length);
        st = await node.GetBlockStatusAsync(512 << 10, 4096);
        Assert.True(st.IsData);

        // A read larger than one request is split and still right.
        var all = new byte[4 << 20];
        await node.ReadAsync(0, all);
        Assert.Equal(File.ReadAllBytes(path), all);
    }

    [Fact]
    public async Task Unknown_export_and_read_only_export_fail_clearly()
    {
        await using var s = await NbdTestServer.StartAsync();
        await s.ExportFileAsync("ro", s.Dir.PatternFile("ro.raw", 65536), writable: false);
        await using var graph = ClientGraph();
        var ex = await Assert.ThrowsAsync<BlockException>(() => OpenAsync(graph, s.Socket, "nope"));
        Assert.Contains("'nope' not available", ex.Message, StringComparison.Ordinal);
        ex = await Assert.ThrowsAsync<BlockException>(() => OpenAsync(graph, s.Socket, "ro"));
        Assert.Equal("NBD export is read-only", ex.Message);
        var node = await OpenAsync(graph, s.Socket, "ro", readOnly: true);
        var buf = new byte[100];
        await node.ReadAsync(1000, buf);
        Assert.Equal(File.ReadAllBytes(s.Dir.File("ro.raw"))[1000..1100], buf);
    }

    [Fact]
    public async Task Losing_the_connection_is_an_io_error()
    {
        var s = await NbdTestServer.StartAsync();
        string path = s.Dir.PatternFile("d.raw", 65536);
        await s.ExportFileAsync("d", path, writable: true);
        await using var graph = ClientGraph();
        var node = await OpenAsync(graph, s.Socket, "d");
        await node.ReadAsync(0, new byte[10]);
        await s.Server.DisposeAsync();

        var ex = await Assert.ThrowsAsync<BlockException>(async () => await node.ReadAsync(0, new byte[10]));
        Assert.Equal(Errno.EIO, ex.Errno);
        Assert.Contains($"NBD connection to '{s.Socket}' lost", ex.Message, StringComparison.Ordinal);
        ex = await Assert.ThrowsAsync<BlockException>(async () => await node.WriteAsync(0, new byte[10]));
        Assert.Equal(Errno.EIO, ex.Errno);
        await s.Graph.DisposeAsync();
        s.Dir.Dispose();
    }

    [Fact]
    public async Task Connects_over_tcp_with_an_inet_address()
    {
        await using var s = await NbdTestServer.StartAsync();
        string path = s.Dir.PatternFile("d.raw", 65536);
        await s.ExportFileAsync("d", path, writable: true);
        var ep = s.Server.ListenTcp(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
        await using var graph = ClientGraph();
        string json = "{\"driver\":\"nbd\",\"id\":\"t0\",\"server\":{\"type\":\"inet\",\"data\":{\"host\":\"localhost\",\"port\":\""
            + ep.Port + "\"}},\"export\":\"d\"}";
        using var doc = JsonDocument.Parse(json);
        var node = await graph.AddAsync(QapiCodec.ReadBlockdevOptions(doc.RootElement, "", false));
        Assert.Equal($"nbd://localhost:{ep.Port}/d", node.Filename);
        var buf = new byte[1000];
        await graph.FindDevice("t0")!.ReadAsync(5000, buf);
        Assert.Equal(File.ReadAllBytes(path)[5000..6000], buf);
    }
}
