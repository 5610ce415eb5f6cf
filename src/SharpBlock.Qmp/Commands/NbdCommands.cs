using SharpBlock.Qmp.Schema;
using SharpBlock.Qmp.Server;

namespace SharpBlock.Qmp.Commands;

/// <summary>
/// The built-in NBD server as QMP commands: nbd-server-start, nbd-server-add, nbd-server-stop. The work is
/// the NbdService's; its failures get their QAPI error class (DeviceNotFound, DeviceEncrypted) at the QMP
/// edge, from their errno and kind (<see cref="Protocol.QmpException.From"/>).
/// </summary>
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
