using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Jobs;
using SharpBlock.Jobs.Backup;
using SharpBlock.Jobs.Mirror;
using SharpBlock.Qmp.Protocol;
using SharpBlock.Qmp.Schema;
using SharpBlock.Qmp.Server;
using SharpBlock.Schema;

namespace SharpBlock.Qmp.Commands;

/// <summary>
/// blockdev-mirror and blockdev-backup (QEMU 7.2): the drive-* jobs, onto a target node the user added with
/// blockdev-add instead of a file the job creates. The source is a device or a root node; a bare node runs
/// through a device of the job's own, let go of when the job has cleaned up.
/// </summary>
internal static class BlockdevJobCommands
{
    public static void Register(QmpServer server)
    {
        server.Register(QmpCommandTable.BlockdevMirror(static async (a, ctx) =>
        {
            int granularity = JobCommands.CheckMirrorSettings(a.Granularity, a.BufSize, a.Sync, a.Speed);
            var (dev, target, jobId) = Resolve(ctx.Server.Graph, a.Device, a.Target, a.JobId, "Can't mirror node into itself");
            await StartAsync(ctx.Server.Graph, dev, jobId, a.AutoFinalize, a.AutoDismiss, () => new MirrorJob(dev, target, a.Sync, granularity,
                a.BufSize ?? 16L << 20, false, a.Speed ?? 0, a.OnSourceError ?? BlockdevOnError.Report,
                a.OnTargetError ?? BlockdevOnError.Report)).ConfigureAwait(false);
        }));
        server.Register(QmpCommandTable.BlockdevBackup(static async (a, ctx) =>
        {
            var prepared = await PrepareBackupAsync(ctx.Server.Graph, a).ConfigureAwait(false);
            await prepared.CommitAsync().ConfigureAwait(false);
        }));
    }

    /// <summary>
    /// blockdev-backup up to the start of its job: every check, the job made (its copy before write guards the
    /// source from now on) and registered. Commit runs it; abort undoes the making, the job's own device included.
    /// </summary>
    internal static async ValueTask<PreparedAction> PrepareBackupAsync(BlockGraph graph, BlockdevBackup a)
    {
        JobCommands.CheckSpeed(a.Speed);
        var (dev, target, jobId) = Resolve(graph, a.Device, a.Target, a.JobId, "Source and target cannot be the same");
        bool own = !graph.Devices.Contains(dev);
        BackupJob? job = null;
        async ValueTask UndoAsync()
        {
            job?.Abandon();
            if (own)
                await dev.ReleaseRootAsync().ConfigureAwait(false);
        }

        try
        {
            var (bitmap, bitmapMode) = JobCommands.BackupBitmap(dev, a.Sync, a.Bitmap, a.BitmapMode);
            job = new BackupJob(dev, target, a.Sync, false,
                a.Speed ?? 0, a.OnSourceError ?? BlockdevOnError.Report, a.OnTargetError ?? BlockdevOnError.Report, bitmap, bitmapMode);
            if (own)
                job.AfterCleanup = dev.ReleaseRootAsync;
            graph.Jobs.Register(job, jobId, a.AutoFinalize ?? true, a.AutoDismiss ?? true);
        }
        catch (Exception ex) when (ex is BlockException or QmpException)
        {
            await UndoAsync().ConfigureAwait(false);
            throw;
        }

        return JobCommands.RegisteredJob(graph, job, UndoAsync);
    }

    /// <summary>The source's device (its own, or a new one over a bare root node), the target node and the job's id, with 7.2's refusals.</summary>
    private static (BlockBackend Device, BlockNode Target, string JobId) Resolve(BlockGraph graph, string device, string target,
        string? jobId, string same)
    {
        var userDevice = graph.FindDevice(device);
        var source = userDevice?.Root ?? graph.FindNode(device) ?? throw NotFound(device);
        var targetNode = graph.FindNode(target) ?? throw NotFound(target);
        // QEMU 7.2's order: a root node, not busy, not itself, then the job's id (a node without a device has
        // no name a default id could come from).
        if (userDevice == null && source.Users.Any(u => u is BlockNode))
            throw new QmpException("Need a root block node");
        foreach (var job in graph.Jobs.Snapshot())
        {
            if (job.HasDevice && job.Device.Root == source && graph.Jobs.Find(job.Device.Id) == job)
                throw new QmpException($"Node '{source.NodeName}' is busy: block device is in use by block job: {job.Type.ToWire()}");
        }

        if (targetNode == source)
            throw new QmpException(same);
        string id = jobId ?? userDevice?.Id ?? "";
        if (!JobManager.WellFormedId(id))
            throw new QmpException($"Invalid job ID '{id}'");
        if (targetNode.Users.Count > 0)
            throw new QmpException($"Node {target} is in use");
        if (targetNode.Length != source.Length)
            throw new QmpException("Source and target image have different sizes");
        var dev = userDevice ?? FindDeviceOf(graph, source) ?? graph.CreateAnonymousDevice(source, "#job-" + id);
        return (dev, targetNode, id);
    }

    private static BlockBackend? FindDeviceOf(BlockGraph graph, BlockNode node)
    {
        foreach (var d in graph.Devices)
        {
            if (d.Root == node)
                return d;
        }

        return null;
    }

    private static QmpException NotFound(string name) => new($"Cannot find device='{name}' nor node-name='{name}'");

    private static async ValueTask StartAsync(BlockGraph graph, BlockBackend dev, string jobId, bool? autoFinalize, bool? autoDismiss,
        Func<BlockJob> create)
    {
        bool own = !graph.Devices.Contains(dev);
        BlockJob job;
        try
        {
            job = create();
            if (own)
                job.AfterCleanup = dev.ReleaseRootAsync;
            graph.Jobs.Start(job, jobId, autoFinalize ?? true, autoDismiss ?? true);
        }
        catch (BlockException)
        {
            if (own)
                await dev.ReleaseRootAsync().ConfigureAwait(false);
            throw;
        }
    }
}
