namespace SharpBlock.Jobs;

/// <summary>
/// Keeps a job to its speed (bytes per second, 0 for unlimited) in 100 ms slices: a chunk that would
/// exceed the slice's budget waits for the next slice. The speed may change while the job runs.
/// </summary>
public sealed class JobRateLimiter
{
    private static readonly TimeSpan Slice = TimeSpan.FromMilliseconds(100);
    private readonly TimeProvider _clock;
    private long _speed;
    private DateTimeOffset _sliceStart;
    private long _sliceBytes;

    /// <summary>A limiter on the given clock (the system's by default; tests pass a fake one).</summary>
    public JobRateLimiter(TimeProvider? clock = null)
    {
        _clock = clock ?? TimeProvider.System;
        _sliceStart = _clock.GetUtcNow();
    }

    public long Speed
    {
        get => Volatile.Read(ref _speed);
        set => Volatile.Write(ref _speed, value);
    }

    /// <summary>How long to wait before dispatching bytes more; zero when they fit now.</summary>
    public TimeSpan Account(long bytes)
    {
        long speed = Speed;
        if (speed <= 0)
            return TimeSpan.Zero;
        var now = _clock.GetUtcNow();
        if (now - _sliceStart >= Slice)
        {
            _sliceStart = now;
            _sliceBytes = 0;
        }

        _sliceBytes += bytes;
        long budget = Math.Max(1, speed / 10);
        if (_sliceBytes <= budget)
            return TimeSpan.Zero;
        // Over budget: wait as many slices as the excess needs.
        double seconds = (double)(_sliceBytes - budget) / speed;
        var wait = (_sliceStart + Slice - now) + TimeSpan.FromSeconds(seconds);
        _sliceStart = now + wait;
        _sliceBytes = 0;
        return wait;
    }
}
