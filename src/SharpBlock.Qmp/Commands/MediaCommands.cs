using SharpBlock.Qmp.Protocol;
using SharpBlock.Qmp.Schema;
using SharpBlock.Qmp.Server;
using SharpBlock.Schema;

namespace SharpBlock.Qmp.Commands;

/// <summary>The medium of a removable device: eject and change.</summary>
internal static class MediaCommands
{
    public static void Register(QmpServer server)
    {
        server.Register(QmpCommandTable.Eject(static async (a, ctx) =>
        {
            var dev = ctx.Server.Graph.FindDevice(a.Device) ?? throw QmpException.DeviceNotFound(a.Device);
            // 'force' overrides a guest's lock of the tray in QEMU 2.1, never a block job's blocker; these
            // devices have no guest to lock the tray, so it changes nothing here.
            await dev.EjectMediumAsync().ConfigureAwait(false);
        }));

        server.Register(QmpCommandTable.Change(static async (a, ctx) =>
        {
            var graph = ctx.Server.Graph;
            var dev = graph.FindDevice(a.Device) ?? throw QmpException.DeviceNotFound(a.Device);
            BlockdevDriver format;
            if (a.Arg is { } name)
            {
                if (!QapiEnums.TryParse(name, out format) || !graph.Drivers.IsSupported(format))
                    throw new QmpException($"Invalid block format '{name}'");
            }
            else
            {
                format = await SharpBlock.Drivers.ImageFormats.ProbeAsync(a.Target, ctx.CancellationToken).ConfigureAwait(false);
            }

            // Refuse before opening anything, so a busy device leaves the new file untouched.
            if (dev.BusyReason is { } reason)
                throw new QmpException($"Device '{a.Device}' is busy: {reason}");
            var node = await graph.OpenImageAsync(a.Target, format, cancellationToken: ctx.CancellationToken).ConfigureAwait(false);
            try
            {
                await dev.ChangeMediumAsync(node).ConfigureAwait(false);
            }
            catch
            {
                await graph.CloseUnusedAsync(node).ConfigureAwait(false);
                throw;
            }

            // The medium stays in; like QEMU the command reports that it needs block_passwd before use.
            EncryptionCommands.ThrowIfKeyMissing(dev);
        }));
    }
}
