using SharpBlock.Qmp.Protocol;
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
        server.Register(QmpCommandTable.NbdServerStart(static (a, ctx) =>
        {
            // An 'fd' address names a descriptor this session kept with getfd; like QEMU's monitor_get_fd the
            // server takes it over, so it is no longer the session's.
            if (a.Addr.Type == SharpBlock.Schema.SocketAddressKind.Fd && a.Addr.Fd is { } named)
            {
                int fd = ctx.Session.TakeNamedFd(named.Str);
                if (fd < 0)
                    throw new QmpException($"File descriptor named '{named.Str}' has not been found");
                return ctx.Server.Nbd.StartOnDescriptorAsync(fd);
            }

            return ctx.Server.Nbd.StartAsync(a.Addr);
        }));
        server.Register(QmpCommandTable.Getfd(static (a, ctx) =>
        {
            ctx.Session.KeepReceivedFd(a.Fdname);
            return ValueTask.CompletedTask;
        }));
        server.Register(QmpCommandTable.Closefd(static (a, ctx) =>
        {
            int fd = ctx.Session.TakeNamedFd(a.Fdname);
            if (fd < 0)
                throw new QmpException($"File descriptor named '{a.Fdname}' not found");
            SharpBlock.Net.FdPassingStream.CloseFd(fd);
            return ValueTask.CompletedTask;
        }));
        server.Register(QmpCommandTable.NbdServerAdd(static (a, ctx) =>
            ctx.Server.Nbd.AddExportAsync(a.Device, null, a.Writable ?? false)));
        server.Register(QmpCommandTable.NbdServerStop(static ctx => ctx.Server.Nbd.StopAsync()));
    }
}
