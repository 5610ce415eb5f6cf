using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Jobs;

/// <summary>The running jobs of a graph: at most one per device, removed when they end.</summary>
public sealed class JobManager
{
    private readonly List<BlockJob> _jobs = [];

    public IReadOnlyList<BlockJob> Snapshot()
    {
        lock (_jobs)
            return [.. _jobs];
    }

    public BlockJob? Find(string device)
    {
        lock (_jobs)
            return _jobs.Find(j => j.Device.Id == device);
    }

    /// <summary>Starts a job; the device must not run one already.</summary>
    public void Start(BlockJob job)
    {
        lock (_jobs)
        {
            if (_jobs.Exists(j => j.Device == job.Device))
                throw new BlockException(Errno.EBUSY, $"Device '{job.Device.Id}' is in use");
            _jobs.Add(job);
        }

        // While the job runs the medium stays: eject and change refuse even when forced, as QEMU 2.1's blocker.
        var blocker = job.Device.AddBlocker("block device is in use by block job: " + job.Type.ToWire());
        job.Start(j =>
        {
            blocker.Dispose();
            Finished(j);
        });
    }

    public void EnsureIdle(BlockBackend device)
    {
        if (Find(device.Id) is { } job)
            throw new BlockException(Errno.EBUSY, $"Device '{device.Id}' is busy: block device is in use by block job: {job.Type.ToWire()}");
    }

    private void Finished(BlockJob job)
    {
        lock (_jobs)
            _jobs.Remove(job);
    }

    /// <summary>Cancels every job and waits for them (daemon shutdown).</summary>
    public async Task CancelAllAsync()
    {
        var jobs = Snapshot();
        foreach (var j in jobs)
            j.Cancel(force: true);
        await Task.WhenAll(jobs.Select(j => j.Completion)).ConfigureAwait(false);
    }
}
