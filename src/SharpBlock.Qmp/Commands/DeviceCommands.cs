using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Qmp.Protocol;
using SharpBlock.Qmp.Schema;
using SharpBlock.Qmp.Server;

namespace SharpBlock.Qmp.Commands;

/// <summary>Commands on one device or node: block_resize (block_passwd is in EncryptionCommands, eject and change in MediaCommands).</summary>
internal static class DeviceCommands
{
    public static void Register(QmpServer server)
    {
        server.Register(QmpCommandTable.BlockResize(static async (a, ctx) =>
        {
            if (a.Size < 0)
                throw new QmpException("Parameter 'size' expects a >0 size");
            var (device, node) = Lookup(ctx.Server.Graph, a.Device, a.NodeName);
            if (node.ReadOnly)
                throw new QmpException($"Device '{a.Device ?? a.NodeName}' is read only");
            // The format's own unit (qcow2: whole sectors), refused in QEMU's words; the driver itself grows to
            // any length because mirror and commit size their targets to a source.
            if (node is SharpBlock.Drivers.IResizeRules rules && a.Size % rules.SizeGranularity != 0)
                throw new QmpException($"The new size must be a multiple of {rules.SizeGranularity}");
            try
            {
                if (device != null)
                    await device.ResizeAsync(a.Size, ctx.CancellationToken).ConfigureAwait(false);
                else
                    await node.TruncateAsync(a.Size, ctx.CancellationToken).ConfigureAwait(false);
            }
            catch (BlockException ex) when (ex.Errno == Errno.EOPNOTSUPP)
            {
                throw new QmpException($"Device '{a.Device ?? a.NodeName}' does not support resizing");
            }
        }));
    }

    /// <summary>
    /// Resolves the 'device' / 'node-name' pair that several commands take: exactly one of them, an unknown
    /// device answered with DeviceNotFound as the schema says.
    /// </summary>
    internal static (BlockBackend? Device, BlockNode Node) Lookup(BlockGraph graph, string? device, string? nodeName)
    {
        if (device != null && nodeName != null)
            throw new QmpException("Only one of 'device' and 'node-name' may be given");
        if (device != null)
        {
            var dev = graph.FindDevice(device) ?? throw QmpException.DeviceNotFound(device);
            var root = dev.Root ?? throw new QmpException(SharpBlock.Schema.ErrorClass.DeviceNotActive, $"Device '{device}' has no medium");
            return (dev, root);
        }

        if (nodeName != null)
            return (null, graph.FindNode(nodeName) ?? throw new QmpException($"Cannot find device='' nor node-name='{nodeName}'"));
        throw new QmpException("One of 'device' and 'node-name' must be given");
    }
}
