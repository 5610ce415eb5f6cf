namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>
/// Serialises requests that change overlapping guest cluster ranges (allocation, copy-on-write, zeroing,
/// discard), so two writers never allocate the same cluster; non-overlapping requests run in parallel.
/// </summary>
internal sealed class Qcow2RangeLock
{
    private readonly List<Held> _held = [];

    internal sealed class Held(long start, long end)
    {
        public long Start { get; } = start;
        public long End { get; } = end;
        public TaskCompletionSource Released { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    public async ValueTask<Releaser> AcquireAsync(long start, long end)
    {
        while (true)
        {
            Task? wait = null;
            lock (_held)
            {
                foreach (var h in _held)
                {
                    if (h.Start < end && start < h.End)
                    {
                        wait = h.Released.Task;
                        break;
                    }
                }

                if (wait == null)
                {
                    var mine = new Held(start, end);
                    _held.Add(mine);
                    return new Releaser(this, mine);
                }
            }

            await wait.ConfigureAwait(false);
        }
    }

    private void Release(Held h)
    {
        lock (_held)
            _held.Remove(h);
        h.Released.TrySetResult();
    }

    internal readonly struct Releaser : IDisposable
    {
        private readonly Qcow2RangeLock? _owner;
        private readonly Held? _held;

        internal Releaser(Qcow2RangeLock owner, Held held)
        {
            _owner = owner;
            _held = held;
        }

        public void Dispose()
        {
            if (_owner != null && _held != null)
                _owner.Release(_held);
        }
    }
}
