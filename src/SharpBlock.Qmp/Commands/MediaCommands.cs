using SharpBlock.Errors;
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
            await dev.EjectMediumAsync(a.Force ?? false).ConfigureAwait(false);
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
                format = Probe(a.Target);
            }

            // Refuse before opening anything, so a busy device leaves the new file untouched.
            if (dev.BusyReason is { } reason)
                throw new QmpException($"Device '{a.Device}' is busy: {reason}");
            var options = new BlockdevOptions { Driver = format };
            var file = new BlockdevRef
            {
                Definition = new BlockdevOptions { Driver = BlockdevDriver.File, File = new BlockdevOptionsFile { Filename = a.Target } },
            };
            switch (format)
            {
                case BlockdevDriver.Raw:
                    options.Raw = new BlockdevOptionsGenericFormat { File = file };
                    break;
                case BlockdevDriver.Qcow2:
                    options.Qcow2 = new BlockdevOptionsQcow2 { File = file };
                    break;
                default:
                    throw new QmpException($"Invalid block format '{format.ToWire()}'");
            }

            var node = await graph.OpenDetachedAsync(options, ctx.CancellationToken).ConfigureAwait(false);
            try
            {
                await dev.ChangeMediumAsync(node).ConfigureAwait(false);
            }
            catch
            {
                await graph.CloseUnusedAsync(node).ConfigureAwait(false);
                throw;
            }
        }));
    }

    /// <summary>Guesses the format of a new medium from its first bytes: qcow2 by its magic, else raw.</summary>
    private static BlockdevDriver Probe(string path)
    {
        Span<byte> magic = stackalloc byte[4];
        int n;
        try
        {
            using var f = File.OpenHandle(path);
            n = RandomAccess.Read(f, magic, 0);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            var errno = BlockException.ErrnoOf(ex);
            throw new QmpException($"Could not open '{path}': {BlockException.Describe(errno)}");
        }

        return n == 4 && magic.SequenceEqual("QFI\xfb"u8) ? BlockdevDriver.Qcow2 : BlockdevDriver.Raw;
    }
}
