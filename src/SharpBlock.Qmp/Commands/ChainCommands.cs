using SharpBlock.Drivers;
using SharpBlock.Graph;
using SharpBlock.Jobs;
using SharpBlock.Jobs.Commit;
using SharpBlock.Jobs.Mirror;
using SharpBlock.Jobs.Stream;
using SharpBlock.Qmp.Protocol;
using SharpBlock.Qmp.Schema;
using SharpBlock.Qmp.Server;
using SharpBlock.Schema;

namespace SharpBlock.Qmp.Commands;

/// <summary>Commands that change a device's backing chain: external snapshots, block-stream, block-commit.</summary>
internal static class ChainCommands
{
    public static void Register(QmpServer server)
    {
        server.Register(QmpCommandTable.BlockdevSnapshotSync(static async (a, ctx) =>
            await PrepareSnapshotSyncAsync(ctx.Server.Graph, a, ctx.CancellationToken).ConfigureAwait(false)));

        server.Register(QmpCommandTable.BlockStream(static (a, ctx) =>
        {
            var graph = ctx.Server.Graph;
            var dev = JobDevice(graph, a.Device);
            var top = dev.Root!;
            BlockNode? baseNode = null;
            if (a.Base is { } b)
            {
                baseNode = (top.Backing is { } below ? BackingChain.FindByFilename(below, b) : null)
                    ?? throw new QmpException($"Base '{b}' not found");
            }

            if (a.Speed is < 0)
                throw new QmpException("Invalid parameter 'speed'");
            graph.Jobs.Start(new StreamJob(dev, baseNode, a.Speed ?? 0, a.OnError ?? BlockdevOnError.Report), a.JobId, a.AutoFinalize ?? true, a.AutoDismiss ?? true);
            return ValueTask.CompletedTask;
        }));

        server.Register(QmpCommandTable.BlockCommit(static (a, ctx) =>
        {
            var graph = ctx.Server.Graph;
            var dev = JobDevice(graph, a.Device);
            var active = dev.Root!;
            var top = BackingChain.FindByFilename(active, a.Top) ?? throw new QmpException($"Top image file {a.Top} not found");
            BlockNode? baseNode;
            if (a.Base is { } b)
            {
                baseNode = BackingChain.FindByFilename(active, b) ?? throw new QmpException($"Base '{b}' not found");
            }
            else
            {
                baseNode = top;
                while (baseNode.Backing != null)
                    baseNode = baseNode.Backing;
            }

            if (baseNode == top)
                throw new QmpException("Invalid files for merge: top and base are the same");
            if (top.Backing == null || !BackingChain.Contains(top.Backing, baseNode))
                throw new QmpException($"Base '{baseNode.Filename}' is not below top '{top.Filename}'");
            if (a.Speed is < 0)
                throw new QmpException("Invalid parameter 'speed'");
            BlockJob job = top == active
                ? new MirrorJob(dev, baseNode, MirrorSyncMode.Full, 64 * 1024, 1 << 20, targetIsZeroed: false,
                    a.Speed ?? 0, BlockdevOnError.Report, BlockdevOnError.Report, activeCommit: true)
                : new CommitJob(dev, top, baseNode, a.Speed ?? 0);
            graph.Jobs.Start(job, a.JobId, a.AutoFinalize ?? true, a.AutoDismiss ?? true);
            return ValueTask.CompletedTask;
        }));
    }

    /// <summary>blockdev-snapshot-sync, done; what comes back undoes it for a transaction that fails further on.</summary>
    internal static async ValueTask<PreparedAction> PrepareSnapshotSyncAsync(BlockGraph graph, BlockdevSnapshot a, CancellationToken ct)
    {
        var (dev, root) = DeviceCommands.Lookup(graph, a.Device, a.NodeName);
        // As in 2.1, a node-name may name the image a device sits on; a node below another (a format's
        // file, a backing image) is not the first non-filter node, which 2.1 answers as a disabled feature.
        dev ??= DeviceOf(graph, root);
        if (dev == null)
        {
            throw new QmpException(root.Users.Count > 0
                ? "The feature 'snapshot' is not enabled"
                : $"Node '{a.NodeName}' is not the image of a device; give the device instead");
        }

        if (graph.Jobs.Find(dev.Id) != null)
            throw new QmpException($"Device '{dev.Id}' is in use");
        string formatName = a.Format ?? graph.Drivers.DefaultOverlayFormat.ToWire();
        if (!QapiEnums.TryParse(formatName, out BlockdevDriver format) || !graph.Drivers.IsSupported(format))
            throw new QmpException($"Unknown driver '{formatName}'");
        if (a.SnapshotNodeName is { } sn && graph.FindNode(sn) != null)
            throw new QmpException($"Duplicate nodes with node-name='{sn}'");
        string path = a.SnapshotFile;
        if (a.Mode != NewImageMode.Existing)
        {
            // absolute-paths: the overlay names its backing file by absolute path.
            await ImageFormats.CreateAsync(format, path, root.Length, Path.GetFullPath(root.Filename), root.DriverName).ConfigureAwait(false);
        }

        var options = ImageFormats.FileOptions(format, path);
        options.NodeName = a.SnapshotNodeName;
        ImageFormats.Find(format, graph.Drivers)?.SetBacking(options, new BlockdevRef { Reference = root.NodeName });
        var overlay = await graph.OpenDetachedAsync(options, ct).ConfigureAwait(false);
        if (overlay.Backing != root)
        {
            await graph.CloseUnusedAsync(overlay).ConfigureAwait(false);
            throw new QmpException($"Format '{formatName}' cannot take a backing file");
        }

        bool wasReadOnly = root.ReadOnly;
        await dev.SwapRootAsync(overlay).ConfigureAwait(false);
        // The old image is now a backing file: nothing writes it any more.
        await root.ReopenAsync(readOnly: true, ct).ConfigureAwait(false);
        return new PreparedAction
        {
            // The device goes back to the old image (the overlay, used by nothing then, is closed; its file
            // stays, as with QEMU), which takes writes again.
            Abort = async () =>
            {
                await dev.SwapRootAsync(root).ConfigureAwait(false);
                await root.ReopenAsync(wasReadOnly, CancellationToken.None).ConfigureAwait(false);
            },
        };
    }

    private static BlockBackend? DeviceOf(BlockGraph graph, BlockNode root)
    {
        foreach (var d in graph.Devices)
        {
            if (d.Root == root)
                return d;
        }

        return null;
    }

    private static BlockBackend JobDevice(BlockGraph graph, string id)
    {
        var dev = graph.FindDevice(id) ?? throw QmpException.DeviceNotFound(id);
        if (dev.Root == null)
            throw new QmpException($"Device '{id}' has no medium");
        if (graph.Jobs.Find(id) != null)
            throw new QmpException($"Device '{id}' is in use");
        return dev;
    }
}
