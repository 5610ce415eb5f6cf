using SharpBlock.Errors;
using SharpBlock.Qmp.Protocol;
using SharpBlock.Qmp.Schema;
using SharpBlock.Qmp.Server;
using SharpBlock.Schema;

namespace SharpBlock.Qmp.Commands;

/// <summary>
/// The built-in NBD server as QMP commands: nbd-server-start, nbd-server-add, nbd-server-stop. The work is
/// the NbdService's; this front only gives its failures their QAPI error class.
/// </summary>
internal static class NbdCommands
{
    public static void Register(QmpServer server)
    {
        server.Register(QmpCommandTable.NbdServerStart(static (a, ctx) => Mapped(ctx.Server.Nbd.StartAsync(a.Addr))));
        server.Register(QmpCommandTable.NbdServerAdd(static (a, ctx) =>
            Mapped(ctx.Server.Nbd.AddExportAsync(a.Device, null, a.Writable ?? false))));
        server.Register(QmpCommandTable.NbdServerStop(static ctx => Mapped(ctx.Server.Nbd.StopAsync())));
    }

    private static async ValueTask Mapped(ValueTask work)
    {
        try
        {
            await work.ConfigureAwait(false);
        }
        catch (EncryptionKeyRequiredException ex)
        {
            throw new QmpException(ErrorClass.DeviceEncrypted, ex.Message);
        }
        catch (BlockException ex) when (ex.Errno == Errno.ENODEV)
        {
            throw new QmpException(ErrorClass.DeviceNotFound, ex.Message);
        }
    }
}
