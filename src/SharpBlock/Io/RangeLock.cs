namespace SharpBlock.Io;

/// <summary>
/// Serialises requests over overlapping byte ranges. A read-modify-write must not interleave with another
/// write to the same block, or one of the two writes is silently lost; non-overlapping requests still run
/// in parallel.
/// </summary>
public sealed class RangeLock
{
    private readonly List<Holder> _held = [];

    /// <summary>Waits until no held range overlaps [start, end) and takes it; dispose the result to let it go.</summary>
    public async ValueTask<Releaser> AcquireAsync(long start, long end)
    {
        var me = new Holder(start, end);
        while (true)
        {
            Task? wait = null;
            lock (_held)
            {
                foreach (var h in _held)
                {
                    if (h.Start < end && start < h.End)
                    {
                        h.Released ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                        wait = h.Released.Task;
                        break;
                    }
                }

                if (wait == null)
                {
                    _held.Add(me);
                    return new Releaser(this, me);
                }
            }

            await wait.ConfigureAwait(false);
        }
    }

    private void Release(Holder h)
    {
        lock (_held)
            _held.Remove(h);
        h.Released?.TrySetResult();
    }

    private sealed class Holder(long start, long end)
    {
        public long Start { get; } = start;
        public long End { get; } = end;
        public TaskCompletionSource? Released { get; set; }
    }

    /// <summary>Gives the range back when disposed.</summary>
    public readonly struct Releaser : IDisposable
    {
        private readonly RangeLock? _owner;
        private readonly Holder? _holder;

        internal Releaser(RangeLock owner, object holder)
        {
            _owner = owner;
            _holder = (Holder)holder;
        }

        public void Dispose()
        {
            if (_owner != null && _holder != null)
                _owner.Release(_holder);
        }
    }
}
