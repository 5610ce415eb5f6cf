using System.Text.Json;
using SharpBlock.Graph;
using SharpBlock.Nbd.Server;
using SharpBlock.Qmp.Schema;
using SharpBlock.Testing;

namespace SharpBlock.Nbd.Tests;

/// <summary>A real NBD server on a Unix socket, exporting raw files on disk through devices of a real graph.</summary>
public sealed class NbdTestServer : IAsyncDisposable
{
    private NbdTestServer(TempDir dir, BlockGraph graph, NbdServer server, string socket)
    {
        Dir = dir;
        Graph = graph;
        Server = server;
        Socket = socket;
    }

    public TempDir Dir { get; }
    public BlockGraph Graph { get; }
    public NbdServer Server { get; }
    public string Socket { get; }

    public static async Task<NbdTestServer> StartAsync(BlockDriverRegistry? drivers = null, NbdServerLimits? limits = null)
    {
        var dir = new TempDir();
        var graph = new BlockGraph(drivers);
        var server = new NbdServer(limits);
        string socket = dir.File("nbd.sock");
        server.ListenUnix(socket);
        await Task.CompletedTask;
        return new NbdTestServer(dir, graph, server, socket);
    }

    /// <summary>Adds a device over a raw file and exports it under the device's name.</summary>
    public async Task<BlockBackend> ExportFileAsync(string id, string path, bool writable, string extra = "")
    {
        string json = "{\"driver\":\"raw\",\"id\":\"" + id + "\"" + extra + ",\"file\":{\"driver\":\"file\",\"filename\":\"" + path + "\"}}";
        using var doc = JsonDocument.Parse(json);
        await Graph.AddAsync(QapiCodec.ReadBlockdevOptions(doc.RootElement, "", false));
        var dev = Graph.FindDevice(id)!;
        Assert.True(Server.TryAddExport(new NbdExport(id, dev, writable, "test export " + id)));
        return dev;
    }

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        await Graph.DisposeAsync();
        Dir.Dispose();
    }
}
