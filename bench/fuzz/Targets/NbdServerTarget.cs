using System.Runtime.ExceptionServices;
using SharpBlock.Graph;
using SharpBlock.Nbd.Server;

namespace SharpBlock.Fuzz.Targets;

/// <summary>
/// The bytes a client sends, from its flags after the greeting to its last request, fed to a real server
/// session exporting a 1 MiB memory disk: the handshake's option parsing (export names, info requests,
/// meta contexts) and then the request parser and dispatcher. The server counts a session that ended on
/// anything but a protocol error or a lost peer as faulted; that fault is the finding.
/// </summary>
public static class NbdServerTarget
{
    public const string ExportName = "fuzz";

    public static async Task RunAsync(byte[] input, FuzzContext context)
    {
        var disk = context.Memory(new byte[1 << 20], NodeSettings.Default, "fuzz.raw", 1 << 20);
        await using var graph = new BlockGraph();
        var device = graph.CreateAnonymousDevice(disk, ExportName);
        var server = new NbdServer(new NbdServerLimits { HandshakeTimeout = TimeSpan.FromSeconds(5) });
        await using (server.ConfigureAwait(false))
        {
            server.TryAddExport(new NbdExport(ExportName, device, writable: true, "fuzz export"));
            await server.ServeAsync(new OneWayStream(input), "fuzz").ConfigureAwait(false);
            if (server.FaultedSessions > 0 && server.LastFault is { } fault)
                ExceptionDispatchInfo.Throw(fault);
        }
    }
}
