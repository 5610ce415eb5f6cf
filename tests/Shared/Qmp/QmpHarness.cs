using System.Text.Json;
using SharpBlock.Graph;
using SharpBlock.Qmp.Server;

namespace SharpBlock.Testing;

/// <summary>
/// The daemon's parts in the test process: a graph, a QMP server on a real Unix socket and a client connected
/// to it. Tests make devices over the wire as a management tool would, then point the real tools at the NBD
/// server or drive a device's I/O in-process as a guest device would.
/// </summary>
public sealed class QmpHarness : IAsyncDisposable
{
    private readonly QmpServerHarness _server;

    private QmpHarness(QmpServerHarness server, QmpTestClient client)
    {
        _server = server;
        Client = client;
    }

    public TempDir Dir => _server.Dir;
    public BlockGraph Graph => _server.Graph;
    public QmpServer Server => _server.Server;
    public QmpTestClient Client { get; }

    /// <summary>Where tests start the NBD server (nbd-server-start with a unix address).</summary>
    public string NbdSocket => Dir.File("nbd.sock");

    public string Url(string export) => $"nbd+unix:///{export}?socket={NbdSocket}";

    public static async Task<QmpHarness> StartAsync(TempDir? dir = null)
    {
        var server = QmpServerHarness.Start(dir);
        return new QmpHarness(server, await server.ConnectAsync());
    }

    public BlockBackend Device(string id) => Graph.FindDevice(id) ?? throw new InvalidOperationException("no device " + id);

    /// <summary>blockdev-add of a raw device over a file, with extra members for the device and its file child.</summary>
    public async Task<BlockBackend> AddRawAsync(string id, string file, string deviceExtra = "", string? fileJson = null)
    {
        fileJson ??= $"{{\"driver\": \"file\", \"filename\": {JsonSerializer.Serialize(file)}}}";
        await Client.ReturnAsync("blockdev-add", $"{{\"driver\": \"raw\", \"id\": \"{id}\"{deviceExtra}, \"file\": {fileJson}}}");
        return Device(id);
    }

    /// <summary>The file child as a blkdebug filter over the file, with the given rules (JSON members).</summary>
    public static string Blkdebug(string file, string rules) =>
        $"{{\"driver\": \"blkdebug\", \"image\": {{\"driver\": \"file\", \"filename\": {JsonSerializer.Serialize(file)}}}, {rules}}}";

    public async Task<JsonElement> QueryDeviceAsync(string id)
    {
        var list = await Client.ReturnAsync("query-block");
        foreach (var d in list.EnumerateArray())
        {
            if (d.GetProperty("device").GetString() == id)
                return d;
        }

        throw new InvalidOperationException("query-block has no " + id);
    }

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
