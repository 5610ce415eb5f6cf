using System.Diagnostics;

namespace SharpBlock.Graph;

/// <summary>
/// Live counters of one node or device, read by query-blockstats. Updated with interlocked operations so
/// requests never take a lock to account themselves.
/// </summary>
public sealed class IoStats
{
    private long _rdBytes, _wrBytes, _rdOps, _wrOps, _flushOps;
    private long _rdTicks, _wrTicks, _flushTicks, _wrHighest;

    public long ReadBytes => Volatile.Read(ref _rdBytes);
    public long WriteBytes => Volatile.Read(ref _wrBytes);
    public long ReadOperations => Volatile.Read(ref _rdOps);
    public long WriteOperations => Volatile.Read(ref _wrOps);
    public long FlushOperations => Volatile.Read(ref _flushOps);
    public long ReadTotalTimeNs => TicksToNs(Volatile.Read(ref _rdTicks));
    public long WriteTotalTimeNs => TicksToNs(Volatile.Read(ref _wrTicks));
    public long FlushTotalTimeNs => TicksToNs(Volatile.Read(ref _flushTicks));
    public long WriteHighestOffset => Volatile.Read(ref _wrHighest);

    private static long TicksToNs(long ticks) => (long)(ticks * (1_000_000_000.0 / Stopwatch.Frequency));

    public void AccountRead(long bytes, long startTimestamp)
    {
        Interlocked.Add(ref _rdBytes, bytes);
        Interlocked.Increment(ref _rdOps);
        Interlocked.Add(ref _rdTicks, Stopwatch.GetTimestamp() - startTimestamp);
    }

    public void AccountWrite(long offset, long bytes, long startTimestamp)
    {
        Interlocked.Add(ref _wrBytes, bytes);
        Interlocked.Increment(ref _wrOps);
        Interlocked.Add(ref _wrTicks, Stopwatch.GetTimestamp() - startTimestamp);
        Io.Atomic.Max(ref _wrHighest, offset + bytes);
    }

    public void AccountFlush(long startTimestamp)
    {
        Interlocked.Increment(ref _flushOps);
        Interlocked.Add(ref _flushTicks, Stopwatch.GetTimestamp() - startTimestamp);
    }
}
