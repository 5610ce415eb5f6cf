namespace SharpBlock.Io;

/// <summary>
/// Counts requests in flight and holds new ones back while a drain is in progress. A graph change
/// (resize, eject, snapshot, job completion) drains, makes its change, and ends the drain; requests
/// that arrived meanwhile then proceed against the new state.
/// </summary>
public sealed class RequestGate
{
    private readonly object _lock = new();
    private int _inFlight;
    private int _drainDepth;
    private TaskCompletionSource? _idle;
    private TaskCompletionSource? _reopened;

    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>Enters one request; waits while drained.</summary>
    public ValueTask EnterAsync()
    {
        lock (_lock)
        {
            if (_drainDepth == 0)
            {
                _inFlight++;
                return ValueTask.CompletedTask;
            }
        }

        return EnterSlowAsync();
    }

    private async ValueTask EnterSlowAsync()
    {
        while (true)
        {
            Task wait;
            lock (_lock)
            {
                if (_drainDepth == 0)
                {
                    _inFlight++;
                    return;
                }

                _reopened ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                wait = _reopened.Task;
            }

            await wait.ConfigureAwait(false);
        }
    }

    public void Leave()
    {
        TaskCompletionSource? idle = null;
        lock (_lock)
        {
            if (--_inFlight == 0 && _idle != null)
            {
                idle = _idle;
                _idle = null;
            }
        }

        idle?.TrySetResult();
    }

    /// <summary>Stops new requests and waits for those in flight. Pair with <see cref="EndDrain"/>.</summary>
    public async ValueTask BeginDrainAsync()
    {
        Task? wait = null;
        lock (_lock)
        {
            _drainDepth++;
            if (_inFlight > 0)
            {
                _idle ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                wait = _idle.Task;
            }
        }

        if (wait != null)
            await wait.ConfigureAwait(false);
    }

    public void EndDrain()
    {
        TaskCompletionSource? reopened = null;
        lock (_lock)
        {
            if (--_drainDepth == 0)
            {
                reopened = _reopened;
                _reopened = null;
            }
        }

        reopened?.TrySetResult();
    }
}
