using SharpBlock.Drivers;
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

/// <summary>Starting block jobs (drive-mirror, drive-backup) and controlling them (block-job-*).</summary>
internal static class JobCommands
{
    public static void Register(QmpServer server)
    {
        server.Register(QmpCommandTable.DriveMirror(static async (a, ctx) =>
        {
            var graph = ctx.Server.Graph;
            var dev = ActiveDevice(graph, a.Device);
            int granularity = CheckMirrorSettings(a.Granularity, a.BufSize, a.Sync, a.Speed);
            var (target, zeroed) = await OpenTargetAsync(graph, dev, a.Target, a.Format, a.Mode, a.Sync, ctx.CancellationToken).ConfigureAwait(false);
            await StartAsync(graph, target, () => new MirrorJob(dev, target, a.Sync, granularity, a.BufSize ?? 16L << 20, zeroed,
                a.Speed ?? 0, a.OnSourceError ?? BlockdevOnError.Report, a.OnTargetError ?? BlockdevOnError.Report),
                a.JobId, a.AutoFinalize, a.AutoDismiss).ConfigureAwait(false);
        }));

        server.Register(QmpCommandTable.DriveBackup(static async (a, ctx) =>
        {
            var prepared = await PrepareDriveBackupAsync(ctx.Server.Graph, a, ctx.CancellationToken).ConfigureAwait(false);
            await prepared.CommitAsync().ConfigureAwait(false);
        }));

        server.Register(QmpCommandTable.BlockJobSetSpeed(static (a, ctx) =>
        {
            var job = Job(ctx.Server.Graph, a.Device);
            if (a.Speed < 0)
                throw new QmpException("Invalid parameter 'speed'");
            job.SetSpeed(a.Speed);
            return ValueTask.CompletedTask;
        }));
        server.Register(QmpCommandTable.BlockJobCancel(static (a, ctx) =>
        {
            Job(ctx.Server.Graph, a.Device).Cancel(a.Force ?? false);
            return ValueTask.CompletedTask;
        }));
        server.Register(QmpCommandTable.BlockJobPause(static (a, ctx) =>
        {
            Job(ctx.Server.Graph, a.Device).Pause();
            return ValueTask.CompletedTask;
        }));
        server.Register(QmpCommandTable.BlockJobResume(static (a, ctx) =>
        {
            Job(ctx.Server.Graph, a.Device).Resume();
            return ValueTask.CompletedTask;
        }));
        server.Register(QmpCommandTable.BlockJobComplete(static (a, ctx) =>
        {
            Job(ctx.Server.Graph, a.Device).Complete();
            return ValueTask.CompletedTask;
        }));
        server.Register(QmpCommandTable.QueryBlockJobs(static ctx =>
        {
            var list = new List<BlockJobInfo>();
            foreach (var j in ctx.Server.Graph.Jobs.Snapshot())
            {
                // Generic jobs (blockdev-create) are not block jobs: only query-jobs shows them.
                if (j.HasDevice)
                    list.Add(j.Describe());
            }

            return ValueTask.FromResult<IReadOnlyList<BlockJobInfo>>(list);
        }));
    }

    /// <summary>QEMU's checks of a mirror's granularity, buffer and speed; returns the granularity to use.</summary>
    internal static int CheckMirrorSettings(uint? granularity, long? bufSize, MirrorSyncMode sync, long? speed)
    {
        int result = 64 * 1024;
        if (granularity is { } g)
        {
            if (g < 512 || g > 64 * 1024 * 1024)
                throw new QmpException("Parameter 'granularity' expects a value in range [512B, 64MB]");
            if ((g & (g - 1)) != 0)
                throw new QmpException("Parameter 'granularity' expects power of 2");
            result = (int)g;
        }

        if (bufSize is < 0)
            throw new QmpException("Invalid parameter 'buf-size'");
        // A mirror copies what is dirty since it started; a bitmap's own marks are the backup's business.
        if (sync is MirrorSyncMode.Incremental or MirrorSyncMode.Bitmap)
            throw new QmpException($"Sync mode '{sync.ToWire()}' not supported");
        CheckSpeed(speed);
        return result;
    }

    internal static void CheckSpeed(long? speed)
    {
        if (speed is < 0)
            throw new QmpException("Invalid parameter 'speed'");
    }

    private static BlockBackend ActiveDevice(BlockGraph graph, string id)
    {
        var dev = graph.FindDevice(id) ?? throw QmpException.DeviceNotFound(id);
        if (dev.Root == null)
            throw new QmpException($"Device '{id}' has no medium");
        if (graph.Jobs.Find(id) != null)
            throw new QmpException($"Device '{id}' is in use");
        return dev;
    }

    /// <summary>The job block-job-* names: by job id (7.2; the device name unless a job-id was given), else the seed's errors.</summary>
    private static BlockJob Job(BlockGraph graph, string device)
    {
        if (graph.Jobs.FindById(device) is { HasDevice: true } job)
            return job;
        if (graph.FindDevice(device) == null)
            throw QmpException.DeviceNotFound(device);
        return graph.Jobs.Find(device) ?? throw QmpException.DeviceNotActive(device);
    }

    /// <summary>
    /// The target of a mirror or backup: created anew (absolute-paths, the default; format defaults to the
    /// source's) or an existing image (its format probed unless given). Returns whether it starts all zero.
    /// </summary>
    private static async ValueTask<(BlockNode Target, bool Zeroed)> OpenTargetAsync(BlockGraph graph, BlockBackend dev, string path,
        string? format, NewImageMode? mode, MirrorSyncMode sync, CancellationToken ct)
    {
        var source = dev.Root!;
        bool existing = mode == NewImageMode.Existing;
        BlockdevDriver driver;
        if (format != null)
        {
            if (!QapiEnums.TryParse(format, out driver))
                throw new QmpException($"Unknown driver '{format}'");
        }
        else if (existing)
        {
            driver = await ImageFormats.ProbeAsync(path, ct).ConfigureAwait(false);
        }
        else if (!QapiEnums.TryParse(source.DriverName, out driver))
        {
            throw new QmpException($"Unknown driver '{source.DriverName}'");
        }

        if (!existing)
        {
            // sync=top copies only the top image, so the new target shares the source's backing file; sync=none
            // copies nothing up front, so as in QEMU the source itself is the target's backing file (what makes
            // image fleecing work). A format without backing files is refused then, in qemu-img's words.
            var backing = sync switch
            {
                MirrorSyncMode.Top => source.Backing,
                MirrorSyncMode.None => source,
                _ => null,
            };
            if (backing != null && ImageFormats.Find(driver, graph.Drivers) is { HasBackingFiles: false } flat)
                throw new QmpException($"Backing file not supported for file format '{flat.Name}'");
            await ImageFormats.CreateAsync(driver, path, source.Length, backing is null ? null : Path.GetFullPath(backing.Filename), backing?.DriverName).ConfigureAwait(false);
        }

        BlockNode target;
        if (!existing && sync == MirrorSyncMode.None)
        {
            // The backing link goes to the live source node, not to a second open of its file: reads of the
            // target's unwritten clusters must see the source's caches, and a qcow2 source's lock allows no
            // second opener anyway.
            var options = ImageFormats.FileOptions(driver, path, graph.Drivers);
            ImageFormats.Find(driver, graph.Drivers)?.SetBacking(options, new BlockdevRef { Reference = source.NodeName });
            target = await graph.OpenDetachedAsync(options, ct).ConfigureAwait(false);
        }
        else
        {
            target = await graph.OpenImageAsync(path, driver, cancellationToken: ct).ConfigureAwait(false);
        }

        if (target.Length != source.Length)
        {
            await graph.CloseUnusedAsync(target).ConfigureAwait(false);
            throw new QmpException("Source and target image have different sizes");
        }

        return (target, !existing);
    }

    /// <summary>
    /// drive-backup up to the start of its job: every check, the target opened (created unless existing), the
    /// job made and registered; the copy before write already guards the source. Commit runs the job; abort
    /// puts the bitmap back and closes the target (a created target file stays, as with QEMU).
    /// </summary>
    internal static async ValueTask<PreparedAction> PrepareDriveBackupAsync(BlockGraph graph, DriveBackup a, CancellationToken ct)
    {
        var dev = ActiveDevice(graph, a.Device);
        CheckSpeed(a.Speed);
        var (bitmap, bitmapMode) = BackupBitmap(dev, a.Sync, a.Bitmap, a.BitmapMode);
        // A bitmap-driven backup's target gets only the changed clusters: a full copy's target (or the
        // previous backup) lies below it, as with sync=full.
        var sync = a.Sync is MirrorSyncMode.Incremental or MirrorSyncMode.Bitmap ? MirrorSyncMode.Full : a.Sync;
        var (target, zeroed) = await OpenTargetAsync(graph, dev, a.Target, a.Format, a.Mode, sync, ct).ConfigureAwait(false);
        var job = new BackupJob(dev, target, a.Sync, zeroed,
            a.Speed ?? 0, a.OnSourceError ?? BlockdevOnError.Report, a.OnTargetError ?? BlockdevOnError.Report, bitmap, bitmapMode);
        async ValueTask AbandonAsync()
        {
            job.Abandon();
            await graph.CloseUnusedAsync(target).ConfigureAwait(false);
        }

        try
        {
            graph.Jobs.Register(job, a.JobId, a.AutoFinalize ?? true, a.AutoDismiss ?? true);
        }
        catch (BlockException)
        {
            await AbandonAsync().ConfigureAwait(false);
            throw;
        }

        return RegisteredJob(graph, job, AbandonAsync);
    }

    /// <summary>What is left of a registered job's action: commit runs it, abort forgets it and undoes its making.</summary>
    internal static PreparedAction RegisteredJob(BlockGraph graph, BlockJob job, Func<ValueTask> undo) => new()
    {
        Job = job,
        Commit = () =>
        {
            graph.Jobs.Run(job);
            return ValueTask.CompletedTask;
        },
        Abort = () =>
        {
            graph.Jobs.Unregister(job);
            return undo();
        },
    };

    internal static async ValueTask StartAsync(BlockGraph graph, BlockNode target, Func<BlockJob> create,
        string? jobId, bool? autoFinalize, bool? autoDismiss)
    {
        var job = create();
        try
        {
            graph.Jobs.Start(job, jobId, autoFinalize ?? true, autoDismiss ?? true);
        }
        catch (BlockException)
        {
            (job as BackupJob)?.Abandon();
            await graph.CloseUnusedAsync(target).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// A backup's bitmap and what becomes of it, checked in QEMU 7.2's order and words (incremental is bitmap
    /// with on-success). Kept free of side effects so that a transaction can run it before any action starts.
    /// </summary>
    internal static (SharpBlock.Bitmaps.NamedDirtyBitmap? Bitmap, BitmapSyncMode Mode) BackupBitmap(BlockBackend dev, MirrorSyncMode sync, string? name, BitmapSyncMode? mode)
    {
        if ((sync is MirrorSyncMode.Bitmap or MirrorSyncMode.Incremental) && name == null)
            throw new QmpException($"must provide a valid bitmap name for '{sync.ToWire()}' sync mode");
        if (sync == MirrorSyncMode.Incremental)
        {
            if (mode is { } m && m != BitmapSyncMode.OnSuccess)
                throw new QmpException("Bitmap sync mode must be 'on-success' when using sync mode 'incremental'");
            mode = BitmapSyncMode.OnSuccess;
        }

        if (name == null)
        {
            if (mode != null)
                throw new QmpException("Cannot specify bitmap sync mode without a bitmap");
            return (null, BitmapSyncMode.Never);
        }

        var bitmap = dev.Root!.FindBitmap(name) ?? throw new QmpException($"Bitmap '{name}' could not be found");
        if (mode is not { } bm)
            throw new QmpException("Bitmap sync mode must be given when providing a bitmap");
        BlockNode.CheckBitmap(bitmap, BitmapUse.Toggle);
        if (sync == MirrorSyncMode.None)
            throw new QmpException("sync mode 'none' does not produce meaningful bitmap outputs");
        if (bm == BitmapSyncMode.Never && sync is not (MirrorSyncMode.Bitmap or MirrorSyncMode.Incremental))
            throw new QmpException($"Bitmap sync mode 'never' has no meaningful effect when combined with sync mode '{sync.ToWire()}'");
        return (bitmap, bm);
    }
}
