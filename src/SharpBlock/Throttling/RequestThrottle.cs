namespace SharpBlock.Throttling;

/// <summary>
/// Holds a device's requests to its limits. Reads and writes wait in separate queues and are let go in
/// turn, one from each side while the buckets allow, so a flood of one kind cannot starve the other.
/// While anything is queued, new requests queue behind it (a newcomer never jumps a waiter); a change of
/// limits takes effect at once for everything still queued.
/// </summary>
public sealed class RequestThrottle : IDisposable
{
    private const int Read = 0;
    private const int Write = 1;

    private readonly object _lock = new();
    private readonly Queue<Waiter>[] _queues = [new(), new()];
    private readonly LeakyBucket[] _buckets = new LeakyBucket[6];
    private readonly ITimer _timer;
    private readonly TimeProvider _clock;
    private ThrottleLimits _limits = ThrottleLimits.None;
    private long _lastLeak;
    private int _preferred;
    private bool _disposed;

    /// <summary>A throttle on the given clock (the system's by default; tests pass a fake one).</summary>
    public RequestThrottle(TimeProvider? clock = null)
    {
        _clock = clock ?? TimeProvider.System;
        _lastLeak = _clock.GetTimestamp();
        _timer = _clock.CreateTimer(static s => ((RequestThrottle)s!).Dispatch(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    public ThrottleLimits Limits
    {
        get
        {
            lock (_lock)
                return _limits;
        }
    }

    public int Queued
    {
        get
        {
            lock (_lock)
                return _queues[Read].Count + _queues[Write].Count;
        }
    }

    /// <summary>Applies new limits; queued requests are re-judged against them immediately.</summary>
    public void SetLimits(ThrottleLimits limits)
    {
        lock (_lock)
        {
            _limits = limits;
            for (var b = ThrottleBucket.BpsTotal; b <= ThrottleBucket.OpsWrite; b++)
            {
                var (avg, max) = limits.Bucket(b);
                // A fresh start: what was poured under the old limits says nothing about the new ones.
                _buckets[(int)b] = new LeakyBucket { Avg = avg, Max = max };
            }

            _lastLeak = _clock.GetTimestamp();
        }

        Dispatch();
    }

    /// <summary>Waits until a request of this size and direction may start, and accounts it.</summary>
    public ValueTask WaitAsync(bool isWrite, long bytes, CancellationToken cancellationToken)
    {
        int dir = isWrite ? Write : Read;
        Waiter w;
        lock (_lock)
        {
            if (!_limits.IsEnabled)
                return ValueTask.CompletedTask;
            Leak();
            if (_queues[Read].Count == 0 && _queues[Write].Count == 0 && WaitSeconds(dir) <= 0)
            {
                Account(dir, bytes);
                return ValueTask.CompletedTask;
            }

            w = new Waiter(bytes);
            _queues[dir].Enqueue(w);
        }

        if (cancellationToken.CanBeCanceled)
            w.Cancellation = cancellationToken.Register(static s => ((Waiter)s!).Done.TrySetCanceled(), w);
        Dispatch();
        return new ValueTask(w.Done.Task);
    }

    private void Leak()
    {
        long now = _clock.GetTimestamp();
        double seconds = (now - _lastLeak) / (double)_clock.TimestampFrequency;
        _lastLeak = now;
        for (int i = 0; i < _buckets.Length; i++)
            _buckets[i].Leak(seconds);
    }

    private double WaitSeconds(int dir)
    {
        double w = Math.Max(_buckets[(int)ThrottleBucket.BpsTotal].Wait(), _buckets[(int)ThrottleBucket.OpsTotal].Wait());
        w = Math.Max(w, _buckets[(int)(dir == Read ? ThrottleBucket.BpsRead : ThrottleBucket.BpsWrite)].Wait());
        return Math.Max(w, _buckets[(int)(dir == Read ? ThrottleBucket.OpsRead : ThrottleBucket.OpsWrite)].Wait());
    }

    private void Account(int dir, long bytes)
    {
        // A request larger than iops_size counts as that many operations, so big requests cannot dodge an
        // operations limit by merging.
        long size = _limits.IopsSize;
        double ops = size > 0 && bytes > size ? bytes / (double)size : 1;
        _buckets[(int)ThrottleBucket.BpsTotal].Account(bytes);
        _buckets[(int)ThrottleBucket.OpsTotal].Account(ops);
        _buckets[(int)(dir == Read ? ThrottleBucket.BpsRead : ThrottleBucket.BpsWrite)].Account(bytes);
        _buckets[(int)(dir == Read ? ThrottleBucket.OpsRead : ThrottleBucket.OpsWrite)].Account(ops);
    }

    private void Dispatch()
    {
        List<Waiter>? go = null;
        lock (_lock)
        {
            if (_disposed)
                return;
            Leak();
            bool off = !_limits.IsEnabled;
            while (true)
            {
                bool progressed = false;
                for (int k = 0; k < 2 && !progressed; k++)
                {
                    int d = (_preferred + k) & 1;
                    var q = _queues[d];
                    while (q.Count > 0 && q.Peek().Done.Task.IsCompleted)
                        q.Dequeue().Cancellation.Dispose();
                    if (q.Count == 0 || (!off && WaitSeconds(d) > 0))
                        continue;
                    var w = q.Dequeue();
                    if (!off)
                        Account(d, w.Bytes);
                    (go ??= []).Add(w);
                    _preferred = d ^ 1;
                    progressed = true;
                }

                if (!progressed)
                    break;
            }

            double wait = double.MaxValue;
            for (int d = 0; d < 2; d++)
            {
                if (_queues[d].Count > 0)
                    wait = Math.Min(wait, WaitSeconds(d));
            }

            if (wait != double.MaxValue)
                _timer.Change(TimeSpan.FromMilliseconds(Math.Max(1, Math.Ceiling(wait * 1000))), Timeout.InfiniteTimeSpan);
        }

        if (go == null)
            return;
        foreach (var w in go)
        {
            w.Cancellation.Dispose();
            w.Done.TrySetResult();
        }
    }

    public void Dispose()
    {
        List<Waiter> pending = [];
        lock (_lock)
        {
            _disposed = true;
            foreach (var q in _queues)
            {
                while (q.Count > 0)
                    pending.Add(q.Dequeue());
            }
        }

        _timer.Dispose();
        // Nothing will limit them any more; let them run into whatever the device does next.
        foreach (var w in pending)
            w.Done.TrySetResult();
    }

    private sealed class Waiter(long bytes)
    {
        public long Bytes { get; } = bytes;
        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public CancellationTokenRegistration Cancellation { get; set; }
    }
}
