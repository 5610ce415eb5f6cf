namespace SharpBlock.Qmp.Server;

/// <summary>
/// QEMU's rate limit on chatty events: at most one event of a limited kind per second goes out. An event
/// that comes sooner after the last one waits until the second is over, and a later one replaces it while
/// it waits, so clients see the first and the newest event of a burst (with their own timestamps) and a
/// guest hammering a broken quorum cannot flood the monitor. Which events are limited, and by how much, is
/// QEMU 2.1's table: QUORUM_REPORT_BAD and QUORUM_FAILURE, one second each, one limit per event name.
/// </summary>
internal sealed class QmpEventThrottle : IDisposable
{
    private static readonly TimeSpan Rate = TimeSpan.FromSeconds(1);

    private readonly TimeProvider _clock;
    private readonly Action<byte[]> _emit;
    private readonly Dictionary<string, Limit> _limits = new(StringComparer.Ordinal);
    private readonly object _lock = new();
    private bool _disposed;

    public QmpEventThrottle(Action<byte[]> emit, TimeProvider? clock = null)
    {
        _emit = emit;
        _clock = clock ?? TimeProvider.System;
    }

    public static bool IsLimited(string eventName) => eventName is "QUORUM_REPORT_BAD" or "QUORUM_FAILURE";

    /// <summary>Sends a built event now, later, or never (when a newer one of its kind replaces it first).</summary>
    public void Offer(string eventName, byte[] message)
    {
        if (!IsLimited(eventName))
        {
            _emit(message);
            return;
        }

        lock (_lock)
        {
            if (_disposed)
                return;
            if (!_limits.TryGetValue(eventName, out var limit))
            {
                limit = new Limit(this);
                _limits[eventName] = limit;
            }

            var now = _clock.GetUtcNow();
            if (limit.Pending != null || now - limit.Last < Rate)
            {
                if (limit.Pending == null)
                    limit.Timer.Change(limit.Last + Rate - now, Timeout.InfiniteTimeSpan);
                limit.Pending = message;
                return;
            }

            limit.Last = now;
            _emit(message);
        }
    }

    private void Expired(Limit limit)
    {
        lock (_lock)
        {
            if (_disposed)
                return;
            if (limit.Pending is { } message)
            {
                limit.Pending = null;
                _emit(message);
            }

            limit.Last = _clock.GetUtcNow();
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            foreach (var l in _limits.Values)
                l.Timer.Dispose();
            _limits.Clear();
        }
    }

    private sealed class Limit
    {
        public Limit(QmpEventThrottle owner)
        {
            Timer = owner._clock.CreateTimer(static s => ((Limit)s!).Owner.Expired((Limit)s!), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            Owner = owner;
        }

        public QmpEventThrottle Owner { get; }

        public ITimer Timer { get; }

        /// <summary>When the last event of this kind went out; the first one finds the distant past.</summary>
        public DateTimeOffset Last { get; set; } = DateTimeOffset.MinValue;

        public byte[]? Pending { get; set; }
    }
}
