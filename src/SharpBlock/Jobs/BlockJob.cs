using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Jobs;

/// <summary>
/// What every block job shares: the device it runs on, progress (offset of len), a speed limit, pause and
/// resume, cancel and complete, the on-error policies with io-status, and the events QMP clients see.
/// A job is a loop of "pick the next chunk, copy it, account it" that stops at pause points between
/// chunks; control commands only set flags and wake it, so they never wait for I/O. Its life as QEMU 7.2's
/// generic jobs see it (status, finalize, dismiss) is in BlockJob.Lifecycle.cs.
/// </summary>
public abstract partial class BlockJob
{
    private readonly SemaphoreSlim _wake = new(0, int.MaxValue);
    private readonly JobRateLimiter _limiter = new();
    private volatile bool _paused;
    private volatile bool _errorStopped;
    private volatile bool _cancelRequested;
    private volatile bool _completeRequested;
    private volatile bool _abortRequested;
    private readonly BlockBackend? _device;
    private readonly BlockGraph _graph;
    private readonly JobType? _kind;
    private long _offset;
    private long _len;

    protected BlockJob(BlockBackend device, BlockJobType type, long speed, BlockdevOnError onSourceError, BlockdevOnError onTargetError)
    {
        _device = device;
        _graph = device.Graph;
        Type = type;
        _limiter.Speed = speed;
        OnSourceError = onSourceError;
        OnTargetError = onTargetError;
    }

    /// <summary>
    /// A job of QEMU 7.2's generic model that acts on no device (blockdev-create): it has an id, a status and
    /// progress, but no device, speed or error policy, and sends none of the BLOCK_JOB_* events.
    /// </summary>
    protected BlockJob(BlockGraph graph, JobType kind)
    {
        _graph = graph;
        _kind = kind;
    }

    /// <summary>The device the job works on; only block jobs have one (<see cref="HasDevice"/>).</summary>
    public BlockBackend Device => _device ?? throw new InvalidOperationException("a " + Kind.ToWire() + " job has no device");

    /// <summary>Whether this is a block job (one that works on a device) rather than a generic job such as create.</summary>
    public bool HasDevice => _device != null;

    public BlockGraph Graph => _graph;
    public BlockJobType Type { get; }
    public BlockdevOnError OnSourceError { get; }
    public BlockdevOnError OnTargetError { get; }
    public long Speed => _limiter.Speed;
    public long Len { get => Interlocked.Read(ref _len); protected set => Interlocked.Exchange(ref _len, value); }
    public long Offset { get => Interlocked.Read(ref _offset); protected set => Interlocked.Exchange(ref _offset, value); }
    public bool Busy { get; protected set; } = true;
    public bool Paused => _paused || _errorStopped;
    public bool Ready { get; private set; }
    public BlockDeviceIoStatus IoStatus { get; private set; } = BlockDeviceIoStatus.Ok;
    public bool CancelRequested => _cancelRequested;
    protected bool CompleteRequested => _completeRequested;
    public Task Completion { get; private set; } = Task.CompletedTask;

    /// <summary>
    /// Runs once the job has cleaned up, before it counts as gone from its device: what the starter set up
    /// for the job alone (the device a job on a bare node runs through) is let go here.
    /// </summary>
    public Func<ValueTask>? AfterCleanup { get; set; }

    /// <summary>The grouped transaction the job belongs to, if any (see <see cref="JobGroup"/>).</summary>
    public JobGroup? Group { get; internal set; }

    /// <summary>The node the job writes to besides its device (a mirror's or backup's target), if any.</summary>
    public virtual BlockNode? Target => null;

    /// <summary>Whether this job type can be completed by block-job-complete once ready.</summary>
    protected virtual bool SupportsComplete => false;

    /// <summary>True once job-cancel asked for the job to be abandoned, even when a cancel would otherwise complete it.</summary>
    protected bool AbortRequested => _abortRequested;

    /// <summary>True when a cancel now ends the job as a success (a synchronised mirror).</summary>
    protected virtual bool CancelMeansComplete => false;

    private BlockEvents Events => _graph.Events;

    internal void Start(Action<BlockJob> onCleaned, Action<BlockJob> onGone)
    {
        Transition(JobStatus.Created);
        Transition(JobStatus.Running);
        Completion = Task.Run(async () =>
        {
            try
            {
                await RunWrappedAsync(onCleaned).ConfigureAwait(false);
            }
            finally
            {
                onGone(this);
            }
        });
    }

    private async Task RunWrappedAsync(Action<BlockJob> onCleaned)
    {
        string? error = null;
        bool cancelled = false;
        try
        {
            await RunAsync().ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_cancelRequested)
        {
            cancelled = _abortRequested || !CancelMeansComplete;
        }
        catch (BlockException ex)
        {
            error = ex.Message;
        }
#pragma warning disable CA1031 // A job failing for any reason must end with an event, never take the daemon down.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            error = ex.Message;
        }

        Busy = false;
        bool success = error == null && !cancelled;
        if (Group is { } group)
        {
            if (success)
                Transition(JobStatus.Waiting);
            if (!await group.ArriveAsync(this, success).ConfigureAwait(false) && success)
            {
                // Another member of the transaction failed: this one ends as cancelled, as in QEMU.
                cancelled = true;
                success = false;
            }
        }

        if (success)
            await AwaitFinalizeAsync().ConfigureAwait(false);
        else
            Transition(JobStatus.Aborting);
        try
        {
            await CleanupAsync(success).ConfigureAwait(false);
        }
#pragma warning disable CA1031
        catch (Exception ex)
#pragma warning restore CA1031
        {
            error ??= ex.Message;
        }

        if (AfterCleanup is { } after)
        {
            try
            {
                await after().ConfigureAwait(false);
            }
#pragma warning disable CA1031
            catch (Exception ex)
#pragma warning restore CA1031
            {
                error ??= ex.Message;
            }
        }

        Error = cancelled ? "Operation canceled" : error;
        if (!HasDevice)
        {
            // Generic jobs announce themselves through JOB_STATUS_CHANGE only.
        }
        else if (cancelled)
        {
            Events.Raise(new BlockJobCancelledEvent { Type = Type, Device = Id, Len = Len, Offset = Offset, Speed = Speed });
        }
        else
        {
            Events.Raise(new BlockJobCompletedEvent { Type = Type, Device = Id, Len = Len, Offset = Offset, Speed = Speed, Error = error });
        }

        onCleaned(this);
        await ConcludeAsync().ConfigureAwait(false);
    }

    /// <summary>The job's loop. Return to complete; throw a BlockException to fail.</summary>
    protected abstract Task RunAsync();

    /// <summary>Releases what the job holds; success says whether it completed normally.</summary>
    protected virtual ValueTask CleanupAsync(bool success) => ValueTask.CompletedTask;

    // ---- Control (from QMP) ----------------------------------------------------------------------

    public void SetSpeed(long speed)
    {
        if (speed < 0)
            throw new BlockException(Errno.EINVAL, "Invalid parameter 'speed'");
        _limiter.Speed = speed;
        Wake();
    }

    public void Pause()
    {
        _paused = true;
        PauseStatus();
        Wake();
    }

    /// <summary>Resumes a paused job; also clears an error stop and the io-status, as the schema says.</summary>
    public void Resume()
    {
        _paused = false;
        _errorStopped = false;
        IoStatus = BlockDeviceIoStatus.Ok;
        ResumeStatus();
        Wake();
    }

    /// <summary>
    /// Asks the job to end. force lets a paused job be cancelled (the seed's meaning); abort (job-cancel, QEMU
    /// 7.2) abandons a ready mirror instead of letting it finish as a point-in-time copy.
    /// </summary>
    public void Cancel(bool force, bool abort = false)
    {
        if (_paused && !force)
            throw new BlockException(Errno.EBUSY, $"The block job for device '{Device.Id}' is currently paused");
        RequestCancel(abort);
    }

    /// <summary>Cancels the job because another job of its grouped transaction failed; never refused.</summary>
    internal void CancelForGroup() => RequestCancel(abort: true);

    private void RequestCancel(bool abort)
    {
        if (abort)
            _abortRequested = true;
        _cancelRequested = true;
        // Cancelling a paused job resumes it so it can end.
        _paused = false;
        _errorStopped = false;
        ResumeStatus();
        Wake();
    }

    public void Complete()
    {
        if (!SupportsComplete || !Ready || _paused || _cancelRequested)
            throw new BlockException(Errno.EBUSY, $"The active block job for device '{Device.Id}' cannot be completed");
        _completeRequested = true;
        Wake();
    }

    protected void Wake() => _wake.Release();

    /// <summary>Waits for a control change or new work, at most the given time.</summary>
    protected async ValueTask WaitForWakeAsync(TimeSpan timeout)
    {
        bool wasBusy = Busy;
        Busy = false;
        await _wake.WaitAsync(timeout).ConfigureAwait(false);
        Busy = wasBusy;
    }

    // ---- Helpers for job loops --------------------------------------------------------------------

    /// <summary>Between chunks: stays here while paused; throws OperationCanceledException once cancelled.</summary>
    protected async ValueTask PausePointAsync()
    {
        while (Paused && !_cancelRequested)
        {
            Busy = false;
            await _wake.WaitAsync(TimeSpan.FromMilliseconds(200)).ConfigureAwait(false);
        }

        Busy = true;
        if (_cancelRequested)
            throw new OperationCanceledException();
    }

    /// <summary>Accounts copied bytes against the speed limit, sleeping (and staying cancellable) when over.</summary>
    protected async ValueTask RateLimitAsync(long bytes)
    {
        var wait = _limiter.Account(bytes);
        while (wait > TimeSpan.Zero && !_cancelRequested)
        {
            var step = wait < TimeSpan.FromMilliseconds(200) ? wait : TimeSpan.FromMilliseconds(200);
            Busy = false;
            await _wake.WaitAsync(step).ConfigureAwait(false);
            Busy = true;
            wait -= step;
        }
    }

    protected void SetReady()
    {
        if (Ready)
            return;
        Ready = true;
        Transition(Paused ? JobStatus.Standby : JobStatus.Ready);
        Events.Raise(new BlockJobReadyEvent { Type = Type, Device = Id, Len = Len, Offset = Offset, Speed = Speed });
    }

    /// <summary>
    /// Applies on-source-error / on-target-error to a failed chunk. Returns true when the chunk should be
    /// tried again (after a stop and resume, or to ignore and retry later); throws to fail the job.
    /// </summary>
    protected async ValueTask<bool> HandleErrorAsync(BlockException ex, bool onSource, bool isRead)
    {
        var policy = onSource ? OnSourceError : OnTargetError;
        var op = isRead ? IoOperationType.Read : IoOperationType.Write;
        if (policy == BlockdevOnError.Enospc)
            policy = ex.Errno == Errno.ENOSPC ? BlockdevOnError.Stop : BlockdevOnError.Report;
        switch (policy)
        {
            case BlockdevOnError.Ignore:
                Events.Raise(new BlockJobErrorEvent { Device = Id, Operation = op, Action = BlockErrorAction.Ignore });
                return false;
            case BlockdevOnError.Stop:
                IoStatus = ex.Errno == Errno.ENOSPC ? BlockDeviceIoStatus.Nospace : BlockDeviceIoStatus.Failed;
                _errorStopped = true;
                PauseStatus();
                Events.Raise(new BlockJobErrorEvent { Device = Id, Operation = op, Action = BlockErrorAction.Stop });
                await PausePointAsync().ConfigureAwait(false);
                return true;
            default:
                Events.Raise(new BlockJobErrorEvent { Device = Id, Operation = op, Action = BlockErrorAction.Report });
                throw ex;
        }
    }

    public BlockJobInfo Describe() => new()
    {
        Type = Type.ToWire(),
        Device = Id,
        Len = Len,
        Offset = Offset,
        Busy = Busy,
        Paused = Paused,
        Speed = Speed,
        IoStatus = IoStatus,
        Ready = Ready && Status is JobStatus.Ready or JobStatus.Standby,
        Status = Status,
        AutoFinalize = AutoFinalize,
        AutoDismiss = AutoDismiss,
        Error = Error,
    };
}
