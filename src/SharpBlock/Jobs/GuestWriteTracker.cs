using SharpBlock.Graph;

namespace SharpBlock.Jobs;

/// <summary>
/// A job's view of the guest writes reaching a node (writes, write-zeroes, discards), the one mechanism mirror,
/// backup and stream share: a hook before each write (backup copies the old data away), a hook after (mirror
/// marks the range dirty), and holds: while a job holds a range, new guest writes to it wait, and the hold is
/// granted only once the overlapping writes already running have finished (stream copies a range up without
/// an older backing byte landing over a newer guest byte). The job's own writes to the node pass untracked
/// inside <see cref="OwnWrites"/>.
/// </summary>
public sealed class GuestWriteTracker : IWriteObserver
{
    private readonly BlockNode _node;
    private readonly Func<long, long, CancellationToken, ValueTask>? _beforeWrite;
    private readonly Action<long, long>? _afterWrite;
    private readonly object _lock = new();
    private readonly List<(long Offset, long Length)> _inFlight = [];
    private readonly List<Hold> _holds = [];
    private readonly AsyncLocal<bool> _own = new();
    private TaskCompletionSource? _inFlightChanged;
    private bool _attached;

    /// <summary>Starts tracking at once, so that nothing written after the job started is missed.</summary>
    public GuestWriteTracker(BlockNode node, Func<long, long, CancellationToken, ValueTask>? beforeWrite = null, Action<long, long>? afterWrite = null)
    {
        _node = node;
        _beforeWrite = beforeWrite;
        _afterWrite = afterWrite;
        _node.AddWriteObserver(this);
        _attached = true;
    }

    /// <summary>Stops tracking; later writes are not seen. Safe to call more than once.</summary>
    public void Detach()
    {
        lock (_lock)
        {
            if (!_attached)
                return;
            _attached = false;
        }

        _node.RemoveWriteObserver(this);
    }

    /// <summary>
    /// Holds [offset, offset+length) against guest writes: new ones wait until the hold is disposed, and this
    /// completes when the overlapping ones already running have finished.
    /// </summary>
    public async ValueTask<Hold> HoldAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        var hold = new Hold(this, offset, length);
        lock (_lock)
            _holds.Add(hold);
        try
        {
            while (true)
            {
                Task wait;
                lock (_lock)
                {
                    if (!_inFlight.Exists(w => Overlaps(w.Offset, w.Length, offset, length)))
                        return hold;
                    _inFlightChanged ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    wait = _inFlightChanged.Task;
                }

                await wait.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        catch
        {
            hold.Dispose();
            throw;
        }
    }

    /// <summary>Within the scope, writes from this async flow are the job's own and pass untracked.</summary>
    public OwnWriteScope OwnWrites()
    {
        _own.Value = true;
        return new OwnWriteScope(this);
    }

    async ValueTask IWriteObserver.BeforeWriteAsync(long offset, long length, CancellationToken cancellationToken)
    {
        if (_own.Value)
            return;
        while (true)
        {
            Task? wait = null;
            lock (_lock)
            {
                foreach (var h in _holds)
                {
                    if (Overlaps(h.Offset, h.Length, offset, length))
                    {
                        wait = h.Released;
                        break;
                    }
                }

                if (wait == null)
                    _inFlight.Add((offset, length));
            }

            if (wait == null)
                break;
            await wait.WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        // The node calls AfterWrite even when this fails, which ends the tracking of this write.
        if (_beforeWrite != null)
            await _beforeWrite(offset, length, cancellationToken).ConfigureAwait(false);
    }

    void IWriteObserver.AfterWrite(long offset, long length)
    {
        if (_own.Value)
            return;
        TaskCompletionSource? changed;
        lock (_lock)
        {
            _inFlight.Remove((offset, length));
            changed = _inFlightChanged;
            _inFlightChanged = null;
        }

        changed?.TrySetResult();
        _afterWrite?.Invoke(offset, length);
    }

    private static bool Overlaps(long a, long alen, long b, long blen) => a < b + blen && b < a + alen;

    private void Release(Hold hold)
    {
        lock (_lock)
            _holds.Remove(hold);
    }

    /// <summary>A range held against guest writes; dispose to let them through.</summary>
    public sealed class Hold : IDisposable
    {
        private readonly GuestWriteTracker _owner;
        private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

        internal Hold(GuestWriteTracker owner, long offset, long length)
        {
            _owner = owner;
            Offset = offset;
            Length = length;
        }

        public long Offset { get; }

        public long Length { get; }

        internal Task Released => _released.Task;

        public void Dispose()
        {
            _owner.Release(this);
            _released.TrySetResult();
        }
    }

    /// <summary>Ends <see cref="OwnWrites"/>.</summary>
    public readonly struct OwnWriteScope(GuestWriteTracker owner) : IDisposable
    {
        public void Dispose() => owner._own.Value = false;
    }
}
