using SharpBlock.Qmp.Schema;
using SharpBlock.Qmp.Server;

namespace SharpBlock.Qmp.Commands;

/// <summary>The built-in NBD server: nbd-server-start, nbd-server-add, nbd-server-stop.</summary>
internal static class NbdCommands
{
    public static void Register(QmpServer server)
    {
        server.Register(QmpCommandTable.NbdServerStart(static (a, ctx) => ctx.Server.Nbd.StartAsync(a.Addr)));
        server.Register(QmpCommandTable.NbdServerAdd(static (a, ctx) =>
            ctx.Server.Nbd.AddExportAsync(a.Device, null, a.Writable ?? false)));
        server.Register(QmpCommandTable.NbdServerStop(static ctx => ctx.Server.Nbd.StopAsync()));
    }
}
