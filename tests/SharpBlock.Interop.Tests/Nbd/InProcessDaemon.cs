using SharpBlock.Graph;
using SharpBlock.Qmp.Server;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Nbd;

/// <summary>
/// The daemon's parts in this process: a graph, a QMP server on a Unix socket, and a QMP client connected
/// to it. Tests drive it only through QMP, as a management tool would, and point the real tools at it.
/// </summary>
public sealed class InProcessDaemon : IAsyncDisposable
{
    private InProcessDaemon(TempDir dir, BlockGraph graph, QmpServer qmp, QmpTestClient client)
    {
        Dir = dir;
        Graph = graph;
        Qmp = qmp;
        Client = client;
    }

    public TempDir Dir { get; }
    public BlockGraph Graph { get; }
    public QmpServer Qmp { get; }
    public QmpTestClient Client { get; }

    /// <summary>Where tests start the NBD server (nbd-server-start with a unix address).</summary>
    public string NbdSocket => Dir.File("nbd.sock");

    public string Url(string export) => $"nbd+unix:///{export}?socket={NbdSocket}";

    public static async Task<InProcessDaemon> StartAsync()
    {
        var dir = new TempDir();
        var graph = new BlockGraph();
        var qmp = new QmpServer(graph);
        string sock = dir.File("qmp.sock");
        qmp.ListenUnix(sock);
        var client = await QmpTestClient.ConnectUnixAsync(sock);
        return new InProcessDaemon(dir, graph, qmp, client);
    }

    /// <summary>blockdev-add of a raw file as device <paramref name="id"/>.</summary>
    public Task AddRawAsync(string id, string path, string extra = "") =>
        Client.ReturnAsync("blockdev-add",
            "{\"driver\":\"raw\",\"id\":\"" + id + "\"" + extra + ",\"file\":{\"driver\":\"file\",\"filename\":\"" + path + "\"}}");

    public async Task StartNbdAsync() =>
        await Client.ReturnAsync("nbd-server-start", UnixAddr(NbdSocket));

    public async Task ExportAsync(string device, bool writable) =>
        await Client.ReturnAsync("nbd-server-add", "{\"device\":\"" + device + "\",\"writable\":" + (writable ? "true" : "false") + "}");

    public static string UnixAddr(string path) => "{\"addr\":{\"type\":\"unix\",\"data\":{\"path\":\"" + path + "\"}}}";

    public async ValueTask DisposeAsync()
    {
        await Client.DisposeAsync();
        await Qmp.DisposeAsync();
        await Graph.DisposeAsync();
        Dir.Dispose();
    }
}
