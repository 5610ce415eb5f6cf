namespace SharpBlock.Nbd.Server;

/// <summary>
/// Bounds what one connection may have in flight: a number of requests and a number of payload bytes.
/// The session stops reading from the socket while the bound is reached, so a client that pipelines
/// faster than the device answers is slowed by TCP instead of growing our memory.
/// </summary>
internal sealed class InFlightLimiter
{
    private readonly object _lock = new();
    private readonly int _maxRequests;
    private readonly long _maxBytes;
    private int _requests;
    private long _bytes;
    private TaskCompletionSource? _changed;

    public InFlightLimiter(int maxRequests, long maxBytes)
    {
        _maxRequests = maxRequests;
        _maxBytes = maxBytes;
    }

    public int Requests
    {
        get
        {
            lock (_lock)
                return _requests;
        }
    }

    /// <summary>Waits until one more request of this many bytes fits. A single request always fits an idle connection.</summary>
    public async ValueTask AcquireAsync(long bytes, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task wait;
            lock (_lock)
            {
                if (_requests == 0 || (_requests < _maxRequests && _bytes + bytes <= _maxBytes))
                {
                    _requests++;
                    _bytes += bytes;
                    return;
                }

                _changed ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                wait = _changed.Task;
            }

            await wait.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public void Release(long bytes)
    {
        TaskCompletionSource? changed;
        lock (_lock)
        {
            _requests--;
            _bytes -= bytes;
            changed = _changed;
            _changed = null;
        }

        changed?.TrySetResult();
    }

    /// <summary>Completes when nothing is in flight.</summary>
    public async ValueTask WaitIdleAsync()
    {
        while (true)
        {
            Task wait;
            lock (_lock)
            {
                if (_requests == 0)
                    return;
                _changed ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                wait = _changed.Task;
            }

            await wait.ConfigureAwait(false);
        }
    }
}
