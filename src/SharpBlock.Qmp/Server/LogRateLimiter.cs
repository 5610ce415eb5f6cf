using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace SharpBlock.Qmp.Server;

/// <summary>
/// Caps the log lines a client can cause once per message, per event or per connection (a refused frame,
/// a dropped event, a failing command): without it a client in a loop fills the operator's disk and
/// drowns every other line. Each kind may log <see cref="MaxPerSecond"/> lines a second, shared by all
/// clients; the first line of a later second says how many were held back before it.
/// </summary>
public sealed class LogRateLimiter
{
    public const int MaxPerSecond = 10;

    private readonly Lock _lock = new();
    private readonly Dictionary<string, Window> _kinds = new(StringComparer.Ordinal);

    /// <summary>Writes one line of the given kind unless that kind has used its share of the current second.</summary>
    public void Log(ILogger log, string kind, Action<ILogger> write)
    {
        int suppressed;
        lock (_lock)
        {
            long now = Stopwatch.GetTimestamp();
            if (!_kinds.TryGetValue(kind, out var w))
            {
                w = new Window { Start = now };
                _kinds[kind] = w;
            }

            if (Stopwatch.GetElapsedTime(w.Start, now) >= TimeSpan.FromSeconds(1))
            {
                w.Start = now;
                w.Count = 0;
            }

            if (w.Count >= MaxPerSecond)
            {
                w.Suppressed++;
                return;
            }

            w.Count++;
            suppressed = w.Suppressed;
            w.Suppressed = 0;
        }

        if (suppressed > 0)
            log.LogWarning("{Count} more '{Kind}' messages were suppressed", suppressed, kind);
        write(log);
    }

    private sealed class Window
    {
        public long Start;
        public int Count;
        public int Suppressed;
    }
}
