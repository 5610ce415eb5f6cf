using SharpBlock.Drivers;
using SharpBlock.Graph;
using SharpBlock.Qmp.Protocol;
using SharpBlock.Qmp.Schema;
using SharpBlock.Qmp.Server;
using SharpBlock.Schema;

namespace SharpBlock.Qmp.Commands;

/// <summary>Internal snapshots of a device's image (any format with the capability): blockdev-snapshot-internal-sync and its delete.</summary>
internal static class InternalSnapshotCommands
{
    public static void Register(QmpServer server)
    {
        server.Register(QmpCommandTable.BlockdevSnapshotInternalSync(static async (a, ctx) =>
            await PrepareAsync(ctx.Server.Graph, a, ctx.CancellationToken).ConfigureAwait(false)));

        server.Register(QmpCommandTable.BlockdevSnapshotDeleteInternalSync(static async (a, ctx) =>
        {
            var (_, node, image) = SnapshotImage(ctx.Server.Graph, a.Device);
            if (a.Id == null && a.Name == null)
                throw new QmpException("Name or id must be provided");
            InternalSnapshot? found = null;
            foreach (var s in image.InternalSnapshots)
            {
                if ((a.Id == null || s.Id == a.Id) && (a.Name == null || s.Name == a.Name))
                {
                    found = s;
                    break;
                }
            }

            if (found == null)
                throw new QmpException($"Snapshot with id '{a.Id}' and name '{a.Name}' does not exist on device '{a.Device}'");
            if (node.ReadOnly)
                throw new QmpException($"Device '{a.Device}' is read only");
            var deleted = await image.DeleteInternalSnapshotAsync(found.Id, ctx.CancellationToken).ConfigureAwait(false);
            return deleted.ToSnapshotInfo();
        }));
    }

    /// <summary>blockdev-snapshot-internal-sync, done; what comes back deletes the snapshot again, for a transaction that fails further on.</summary>
    internal static async ValueTask<PreparedAction> PrepareAsync(BlockGraph graph, BlockdevSnapshotInternal a, CancellationToken ct)
    {
        var (dev, node, image) = SnapshotImage(graph, a.Device);
        if (a.Name.Length == 0)
            throw new QmpException("Name is empty");
        if (node.ReadOnly)
            throw new QmpException($"Device '{a.Device}' is read only");
        foreach (var s in image.InternalSnapshots)
        {
            if (s.Name == a.Name)
                throw new QmpException($"Snapshot with name '{a.Name}' already exists on device '{a.Device}'");
        }

        if (graph.Jobs.Find(dev.Id) != null)
            throw new QmpException($"Device '{a.Device}' is in use");
        var created = await image.CreateInternalSnapshotAsync(a.Name, ct).ConfigureAwait(false);
        return new PreparedAction
        {
            Abort = async () => await image.DeleteInternalSnapshotAsync(created.Id, CancellationToken.None).ConfigureAwait(false),
        };
    }

    private static (BlockBackend Device, BlockNode Node, IInternalSnapshots Image) SnapshotImage(BlockGraph graph, string device)
    {
        var dev = graph.FindDevice(device) ?? throw QmpException.DeviceNotFound(device);
        var root = dev.Root ?? throw new QmpException($"Device '{device}' has no medium");
        if (InternalSnapshotLookup.Of(root) is not { } snapshots)
            throw new QmpException($"Block format '{root.DriverName}' used by device '{device}' does not support feature 'internal snapshot'");
        return (dev, root, snapshots);
    }
}
