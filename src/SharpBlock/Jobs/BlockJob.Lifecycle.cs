using SharpBlock.Errors;
using SharpBlock.Schema;

namespace SharpBlock.Jobs;

/// <summary>
/// A job's life as QEMU 7.2's job model shows it: an id, a status that every change announces with
/// JOB_STATUS_CHANGE, and two optional stops at the end (pending until job-finalize when auto-finalize is
/// off, concluded until job-dismiss when auto-dismiss is off). The seed's block-job-* commands act on the
/// same job; with the default id (the device name) and both automatic, clients see the seed's behaviour.
/// </summary>
public abstract partial class BlockJob
{
    private readonly Lock _statusLock = new();
    private readonly TaskCompletionSource _finalize = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _dismiss = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _cleaned = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _concluded = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private string? _id;

    /// <summary>The job's identifier: the job-id it was started with, else its device's name.</summary>
    public string Id => _id ?? Device.Id;

    public bool AutoFinalize { get; private set; } = true;
    public bool AutoDismiss { get; private set; } = true;
    public JobStatus Status { get; private set; } = JobStatus.Undefined;

    /// <summary>Why a concluded job failed ("Operation canceled" after a cancel); null on success.</summary>
    public string? Error { get; private set; }

    /// <summary>Completes once the job has let go of its device and nodes (before it concludes).</summary>
    public Task Cleaned => _cleaned.Task;

    /// <summary>Completes once the job has concluded (its end event sent).</summary>
    public Task Concluded => _concluded.Task;

    /// <summary>The job's kind in the generic job model.</summary>
    public JobType Kind => _kind ?? Type switch
    {
        BlockJobType.Commit => JobType.Commit,
        BlockJobType.Stream => JobType.Stream,
        BlockJobType.Mirror => JobType.Mirror,
        _ => JobType.Backup,
    };

    internal void Configure(string? id, bool autoFinalize, bool autoDismiss)
    {
        _id = id;
        AutoFinalize = autoFinalize;
        AutoDismiss = autoDismiss;
    }

    /// <summary>
    /// Refuses a verb the job's status does not take, in QEMU's words (its verb table: pause, resume and
    /// set-speed while it can still run; complete when ready; finalize when pending; dismiss when concluded).
    /// Cancel is refused once pending here, where QEMU would abort: our mirror has switched over by then.
    /// </summary>
    public void CheckVerb(string verb)
    {
        var s = Status;
        bool ok = verb switch
        {
            "cancel" => s is JobStatus.Created or JobStatus.Running or JobStatus.Paused or JobStatus.Ready or JobStatus.Standby or JobStatus.Waiting,
            "pause" or "resume" or "set-speed" => s is JobStatus.Created or JobStatus.Running or JobStatus.Paused or JobStatus.Ready or JobStatus.Standby,
            "complete" => s == JobStatus.Ready,
            "finalize" => s == JobStatus.Pending,
            "dismiss" => s == JobStatus.Concluded,
            _ => false,
        };
        if (!ok)
            throw new BlockException(Errno.EPERM, $"Job '{Id}' in state '{s.ToWire()}' cannot accept command verb '{verb}'");
    }

    /// <summary>job-pause: as block-job-pause, but pausing a paused job is refused, as QEMU 7.2 does.</summary>
    public void UserPause()
    {
        CheckVerb("pause");
        if (_paused)
            throw new BlockException(Errno.EBUSY, "Job is already paused");
        Pause();
    }

    /// <summary>job-resume: as block-job-resume, but only a job that was paused can be resumed.</summary>
    public void UserResume()
    {
        CheckVerb("resume");
        if (!_paused && !_errorStopped)
            throw new BlockException(Errno.EINVAL, "Can't resume a job that was not paused");
        Resume();
    }

    /// <summary>
    /// Lets a job waiting in pending apply its result; completes once it has concluded, so (as in QEMU) its
    /// end events go out before the command's reply.
    /// </summary>
    public Task FinalizeJob()
    {
        CheckVerb("finalize");
        _finalize.TrySetResult();
        return Concluded;
    }

    /// <summary>Forgets a concluded job; completes once it is gone.</summary>
    public Task DismissJob()
    {
        CheckVerb("dismiss");
        _dismiss.TrySetResult();
        return Completion;
    }

    /// <summary>Lets a job that waits for finalize or dismiss go on without them (daemon shutdown).</summary>
    internal void Release()
    {
        _finalize.TrySetResult();
        _dismiss.TrySetResult();
    }

    private void Transition(JobStatus status)
    {
        // Under the lock so that two threads changing the status announce it in the order it changed.
        lock (_statusLock)
        {
            if (Status == status)
                return;
            Status = status;
            Events.Raise(new JobStatusChangeEvent { Id = Id, Status = status });
        }
    }

    private void PauseStatus()
    {
        lock (_statusLock)
        {
            if (Status == JobStatus.Running)
                Transition(JobStatus.Paused);
            else if (Status == JobStatus.Ready)
                Transition(JobStatus.Standby);
        }
    }

    private void ResumeStatus()
    {
        lock (_statusLock)
        {
            if (Status == JobStatus.Paused)
                Transition(JobStatus.Running);
            else if (Status == JobStatus.Standby)
                Transition(JobStatus.Ready);
        }
    }

    private async ValueTask AwaitFinalizeAsync()
    {
        // A job on its own is its whole transaction: it waits for nobody, and goes straight on to pending (a
        // grouped one has already waited for its group in RunWrappedAsync).
        Transition(JobStatus.Waiting);
        Transition(JobStatus.Pending);
        if (AutoFinalize)
            return;
        Events.Raise(new BlockJobPendingEvent { Type = Kind, Id = Id });
        await _finalize.Task.ConfigureAwait(false);
    }

    private async ValueTask ConcludeAsync()
    {
        _cleaned.TrySetResult();
        Transition(JobStatus.Concluded);
        _concluded.TrySetResult();
        if (!AutoDismiss)
            await _dismiss.Task.ConfigureAwait(false);
        Transition(JobStatus.Null);
    }
}
