using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Jobs;

/// <summary>
/// The jobs of a graph, from start until they are gone (dismissed): at most one active job per device,
/// job ids unique among all of them.
/// </summary>
public sealed class JobManager
{
    private readonly List<BlockJob> _jobs = [];
    private readonly HashSet<BlockJob> _active = [];

    public IReadOnlyList<BlockJob> Snapshot()
    {
        lock (_jobs)
            return [.. _jobs];
    }

    /// <summary>The job that holds the device now (until it has cleaned up), if any.</summary>
    public BlockJob? Find(string device)
    {
        lock (_jobs)
        {
            foreach (var j in _active)
            {
                if (j.HasDevice && j.Device.Id == device)
                    return j;
            }

            return null;
        }
    }

    /// <summary>The job with this id, concluded ones not yet dismissed included.</summary>
    public BlockJob? FindById(string id)
    {
        lock (_jobs)
            return _jobs.Find(j => j.Id == id);
    }

    /// <summary>
    /// Starts a job; the device must not run one already. id (QEMU's job-id) defaults to the device name;
    /// with autoFinalize off the job waits in pending for FinalizeJob, with autoDismiss off it stays
    /// concluded until DismissJob.
    /// </summary>
    public void Start(BlockJob job, string? id = null, bool autoFinalize = true, bool autoDismiss = true)
    {
        Register(job, id, autoFinalize, autoDismiss);
        Run(job);
    }

    /// <summary>
    /// The first half of <see cref="Start"/> (QEMU's job creation): every check, and the job holds its id and
    /// device, but it does not run yet. A transaction registers its jobs while it prepares, so a later action
    /// sees them, and runs them (<see cref="Run"/>) or lets them go (<see cref="Unregister"/>) at its end.
    /// </summary>
    public void Register(BlockJob job, string? id = null, bool autoFinalize = true, bool autoDismiss = true)
    {
        ArgumentNullException.ThrowIfNull(job);
        if (id != null && !WellFormedId(id))
            throw new BlockException(Errno.EINVAL, $"Invalid job ID '{id}'");
        job.Configure(id, autoFinalize, autoDismiss);
        lock (_jobs)
        {
            if (job.HasDevice && _active.Any(j => j.HasDevice && j.Device == job.Device))
                throw new BlockException(Errno.EBUSY, $"Device '{job.Device.Id}' is in use");
            if (_jobs.Exists(j => j.Id == job.Id))
                throw new BlockException(Errno.EEXIST, $"Job ID '{job.Id}' already in use");
            _jobs.Add(job);
            _active.Add(job);
        }
    }

    /// <summary>Forgets a registered job that never ran (its transaction failed).</summary>
    public void Unregister(BlockJob job)
    {
        lock (_jobs)
        {
            _jobs.Remove(job);
            _active.Remove(job);
        }
    }

    /// <summary>Runs a registered job.</summary>
    public void Run(BlockJob job)
    {
        ArgumentNullException.ThrowIfNull(job);
        // While the job runs the medium stays: eject and change refuse even when forced, as QEMU 2.1's blocker.
        var blocker = job.HasDevice ? job.Device.AddBlocker("block device is in use by block job: " + job.Type.ToWire()) : null;
        job.Start(
            j =>
            {
                blocker?.Dispose();
                lock (_jobs)
                    _active.Remove(j);
            },
            j =>
            {
                lock (_jobs)
                    _jobs.Remove(j);
            });
    }

    /// <summary>QEMU's rule for ids: a letter first, then letters, digits, '-', '.' and '_'.</summary>
    public static bool WellFormedId(string id)
    {
        if (id.Length == 0 || !char.IsAsciiLetter(id[0]))
            return false;
        foreach (char c in id)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c is not ('-' or '.' or '_'))
                return false;
        }

        return true;
    }

    public void EnsureIdle(BlockBackend device)
    {
        if (Find(device.Id) is { } job)
            throw new BlockException(Errno.EBUSY, $"Device '{device.Id}' is busy: block device is in use by block job: {job.Type.ToWire()}");
    }

    /// <summary>Cancels every job, lets those waiting for finalize or dismiss go, and waits for them (daemon shutdown).</summary>
    public async Task CancelAllAsync()
    {
        var jobs = Snapshot();
        foreach (var j in jobs)
        {
            j.Cancel(force: true);
            j.Release();
        }

        await Task.WhenAll(jobs.Select(j => j.Completion)).ConfigureAwait(false);
    }
}
