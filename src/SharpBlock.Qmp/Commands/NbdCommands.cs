using SharpBlock.Qmp.Protocol;
using SharpBlock.Qmp.Schema;
using SharpBlock.Qmp.Server;

namespace SharpBlock.Qmp.Commands;

/// <summary>
/// The built-in NBD server as QMP commands: nbd-server-start, nbd-server-add, nbd-server-remove,
/// nbd-server-stop (block-export-* are in <see cref="BlockExportCommands"/>). The work is
/// the NbdService's; its failures get their QAPI error class (DeviceNotFound, DeviceEncrypted) at the QMP
/// edge, from their errno and kind (<see cref="Protocol.QmpException.From"/>).
/// </summary>
internal static class NbdCommands
{
    public static void Register(QmpServer server)
    {
        server.Register(QmpCommandTable.NbdServerStart(static (a, ctx) =>
        {
            // Said plainly rather than as 7.2's "No TLS credentials with id": no object could make it work.
            if (a.TlsCreds != null || a.TlsAuthz != null)
                throw new QmpException("TLS is not supported by this NBD server yet: nbd-server-start takes no 'tls-creds' or 'tls-authz'");
            uint max = a.MaxConnections ?? 0;

            // An 'fd' address names a descriptor this session kept with getfd; like QEMU's monitor_get_fd the
            // server takes it over, so it is no longer the session's.
            if (a.Addr.Type == SharpBlock.Schema.SocketAddressKind.Fd && a.Addr.Fd is { } named)
            {
                int fd = ctx.Session.TakeNamedFd(named.Str);
                if (fd < 0)
                    throw new QmpException($"File descriptor named '{named.Str}' has not been found");
                return ctx.Server.Nbd.StartOnDescriptorAsync(fd, max);
            }

            return ctx.Server.Nbd.StartAsync(a.Addr, max);
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
            ctx.Server.Nbd.AddExportAsync(a.Device, a.Writable ?? false, a.Name, a.Description, a.Bitmap)));
        server.Register(QmpCommandTable.NbdServerRemove(static (a, ctx) =>
            ctx.Server.Nbd.RemoveExportAsync(a.Name, a.Mode ?? SharpBlock.Schema.BlockExportRemoveMode.Safe)));
        server.Register(QmpCommandTable.NbdServerStop(static ctx => ctx.Server.Nbd.StopAsync()));
    }
}
