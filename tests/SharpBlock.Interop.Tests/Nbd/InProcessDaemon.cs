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
    private readonly QmpServerHarness _server;

    private InProcessDaemon(QmpServerHarness server, QmpTestClient client)
    {
        _server = server;
        Client = client;
    }

    public TempDir Dir => _server.Dir;
    public BlockGraph Graph => _server.Graph;
    public QmpServer Qmp => _server.Server;
    public QmpTestClient Client { get; }

    /// <summary>Where tests start the NBD server (nbd-server-start with a unix address).</summary>
    public string NbdSocket => Dir.File("nbd.sock");

    public string Url(string export) => $"nbd+unix:///{export}?socket={NbdSocket}";

    public static async Task<InProcessDaemon> StartAsync()
    {
        var server = QmpServerHarness.Start();
        return new InProcessDaemon(server, await server.ConnectAsync());
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
        await _server.DisposeAsync();
    }
}
