namespace SharpBlock.Io;

internal static class Atomic
{
    /// <summary>Raises location to value if value is larger, without a lock.</summary>
    public static void Max(ref long location, long value)
    {
        long seen = Volatile.Read(ref location);
        while (value > seen)
        {
            long prev = Interlocked.CompareExchange(ref location, value, seen);
            if (prev == seen)
                return;
            seen = prev;
        }
    }
}
