namespace SharpBlock.Jobs;

/// <summary>
/// The jobs one QMP transaction started with completion-mode grouped (QEMU's job transaction): they end
/// together. A member that finishes its work waits (status 'waiting') for the others; once one fails or is
/// cancelled, every other member is cancelled, those already waiting included, so no member keeps a result
/// the others lost.
/// </summary>
public sealed class JobGroup
{
    private readonly Lock _lock = new();
    private readonly List<BlockJob> _members = [];
    private readonly TaskCompletionSource<bool> _outcome = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _running;

    /// <summary>Makes the job a member; every member joins before any of them starts.</summary>
    public void Add(BlockJob job)
    {
        ArgumentNullException.ThrowIfNull(job);
        lock (_lock)
        {
            _members.Add(job);
            _running++;
        }

        job.Group = this;
    }

    /// <summary>
    /// A member's work ended (successfully or not). Returns whether it may keep its result: false once any
    /// member failed. A successful member waits here until every member has ended its work.
    /// </summary>
    internal async ValueTask<bool> ArriveAsync(BlockJob job, bool success)
    {
        List<BlockJob>? toCancel = null;
        lock (_lock)
        {
            _running--;
            if (!success && !_outcome.Task.IsCompleted)
            {
                toCancel = _members.FindAll(m => m != job);
                _outcome.TrySetResult(false);
            }
            else if (_running == 0)
            {
                _outcome.TrySetResult(true);
            }
        }

        if (toCancel != null)
        {
            // Outside the lock: a cancelled member that has not started its work arrives here at once.
            foreach (var m in toCancel)
                m.CancelForGroup();
        }

        return success && await _outcome.Task.ConfigureAwait(false);
    }
}
