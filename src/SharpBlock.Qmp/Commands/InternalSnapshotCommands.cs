using SharpBlock.Drivers.Format.Qcow2;
using SharpBlock.Graph;
using SharpBlock.Qmp.Protocol;
using SharpBlock.Qmp.Schema;
using SharpBlock.Qmp.Server;

namespace SharpBlock.Qmp.Commands;

/// <summary>Internal snapshots of a device's image (qcow2): blockdev-snapshot-internal-sync and its delete.</summary>
internal static class InternalSnapshotCommands
{
    public static void Register(QmpServer server)
    {
        server.Register(QmpCommandTable.BlockdevSnapshotInternalSync(static async (a, ctx) =>
        {
            var (dev, image) = Qcow2Image(ctx.Server.Graph, a.Device);
            if (a.Name.Length == 0)
                throw new QmpException("Name is empty");
            if (image.ReadOnly)
                throw new QmpException($"Device '{a.Device}' is read only");
            foreach (var s in image.Snapshots)
            {
                if (s.Name == a.Name)
                    throw new QmpException($"Snapshot with name '{a.Name}' already exists on device '{a.Device}'");
            }

            if (ctx.Server.Graph.Jobs.Find(dev.Id) != null)
                throw new QmpException($"Device '{a.Device}' is in use");
            await image.CreateSnapshotAsync(a.Name, ctx.CancellationToken).ConfigureAwait(false);
        }));

        server.Register(QmpCommandTable.BlockdevSnapshotDeleteInternalSync(static async (a, ctx) =>
        {
            var (_, image) = Qcow2Image(ctx.Server.Graph, a.Device);
            if (a.Id == null && a.Name == null)
                throw new QmpException("Name or id must be provided");
            Qcow2Snapshot? found = null;
            foreach (var s in image.Snapshots)
            {
                if ((a.Id == null || s.Id == a.Id) && (a.Name == null || s.Name == a.Name))
                {
                    found = s;
                    break;
                }
            }

            if (found == null)
                throw new QmpException($"Snapshot with id '{a.Id}' and name '{a.Name}' does not exist on device '{a.Device}'");
            if (image.ReadOnly)
                throw new QmpException($"Device '{a.Device}' is read only");
            var deleted = await image.DeleteSnapshotAsync(found.Id, ctx.CancellationToken).ConfigureAwait(false);
            return Qcow2Node.ToSnapshotInfo(deleted);
        }));
    }

    private static (BlockBackend Device, Qcow2Node Image) Qcow2Image(BlockGraph graph, string device)
    {
        var dev = graph.FindDevice(device) ?? throw QmpException.DeviceNotFound(device);
        var root = dev.Root ?? throw new QmpException($"Device '{device}' has no medium");
        if (root is not Qcow2Node q)
            throw new QmpException($"Block format '{root.DriverName}' used by device '{device}' does not support feature 'internal snapshot'");
        return (dev, q);
    }
}
