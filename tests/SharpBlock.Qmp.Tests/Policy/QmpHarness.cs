using System.Text.Json;
using SharpBlock.Graph;
using SharpBlock.Qmp.Server;
using SharpBlock.Testing;

namespace SharpBlock.Qmp.Tests.Policy;

/// <summary>
/// A QMP server in the test process on a real Unix socket, with a client connected to it. Devices are made
/// over the wire; the test drives their I/O in-process through the BlockBackend, as a guest device would.
/// </summary>
internal sealed class QmpHarness : IAsyncDisposable
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

    public async ValueTask DisposeAsync()
    {
        await Client.DisposeAsync();
        await _server.DisposeAsync();
    }
}
