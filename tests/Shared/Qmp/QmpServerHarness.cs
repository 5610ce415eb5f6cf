using SharpBlock.Graph;
using SharpBlock.Qmp.Server;

namespace SharpBlock.Testing;

/// <summary>A real QMP server on a real Unix socket in a scratch directory, torn down after the test.</summary>
public sealed class QmpServerHarness : IAsyncDisposable
{
    private QmpServerHarness(TempDir dir, BlockGraph graph, QmpServer server, string socket)
    {
        Dir = dir;
        Graph = graph;
        Server = server;
        SocketPath = socket;
    }

    public TempDir Dir { get; }
    public BlockGraph Graph { get; }
    public QmpServer Server { get; }
    public string SocketPath { get; }

    public static QmpServerHarness Start(TempDir? dir = null)
    {
        dir ??= new TempDir();
        var graph = new BlockGraph();
        var server = new QmpServer(graph);
        string socket = dir.File("qmp.sock");
        server.ListenUnix(socket);
        return new QmpServerHarness(dir, graph, server, socket);
    }

    public Task<QmpTestClient> ConnectAsync(bool negotiate = true) => QmpTestClient.ConnectUnixAsync(SocketPath, negotiate);

    /// <summary>JSON for blockdev-add of a raw device over a file, in the seed's 'options' form.</summary>
    public static string RawDevice(string id, string path, string extra = "") =>
        "{\"options\": {\"driver\": \"raw\", \"id\": \"" + id + "\"" + extra + ", \"file\": {\"driver\": \"file\", \"filename\": \"" + path + "\"}}}";

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        await Graph.DisposeAsync();
        Dir.Dispose();
    }
}
