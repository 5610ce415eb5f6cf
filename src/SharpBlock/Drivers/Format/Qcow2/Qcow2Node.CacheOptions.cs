using SharpBlock.Errors;

namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>The cache-size options of newer QEMU (cache-size, l2-cache-size, refcount-cache-size, ...), all optional.</summary>
public readonly record struct Qcow2CacheOptions(
    long? CacheSize,
    long? L2CacheSize,
    long? L2CacheEntrySize,
    long? RefcountCacheSize,
    long? CacheCleanInterval);

/// <summary>Sizing of the L2 and refcount caches from the open options, with QEMU's defaults and errors.</summary>
public sealed partial class Qcow2Node
{
    /// <summary>QEMU's ceiling for the default L2 cache.</summary>
    internal const long DefaultL2CacheMax = 32L << 20;

    /// <summary>QEMU's smallest refcount cache, in refcount blocks (also its default).</summary>
    internal const int MinRefcountCacheBlocks = 4;

    /// <summary>QEMU's default cache-clean-interval, in seconds.</summary>
    internal const long DefaultCacheCleanInterval = 600;

    /// <summary>The longest due time or period a <see cref="Timer"/> accepts.</summary>
    private const long MaxTimerMilliseconds = uint.MaxValue - 1L;

    private Timer? _cleanTimer;

    /// <summary>The number of L2 tables and refcount blocks the caches hold (for tests and query output).</summary>
    public (int L2Tables, int RefcountBlocks) CacheCapacity => (_l2Cache.Capacity, _refCache.Capacity);

    /// <summary>
    /// Applies the cache options: checks them as QEMU does (same errors), splits a combined cache-size as QEMU
    /// does, and sizes the caches. Without any option the caches are never smaller than the built-in sizes.
    /// </summary>
    internal void ConfigureCaches(Qcow2CacheOptions o)
    {
        (long l2Bytes, long refBytes) = ComputeCacheSizes(o, _clusterSize, _size);
        // We cache whole L2 tables, so a smaller entry size only lowers how many tables fit the budget.
        long l2Tables = Math.Max(2, l2Bytes / _clusterSize);
        long refBlocks = Math.Max(MinRefcountCacheBlocks, refBytes / _clusterSize);
        if (l2Tables > int.MaxValue)
            throw new BlockException(Errno.EINVAL, "L2 cache size too big");
        if (refBlocks > int.MaxValue)
            throw new BlockException(Errno.EINVAL, "Refcount cache size too big");
        bool explicitSizes = o.CacheSize != null || o.L2CacheSize != null || o.RefcountCacheSize != null;
        _l2Cache.Capacity = explicitSizes ? (int)l2Tables : Math.Max(_l2Cache.Capacity, (int)l2Tables);
        _refCache.Capacity = explicitSizes ? (int)refBlocks : Math.Max(_refCache.Capacity, (int)refBlocks);

        long interval = o.CacheCleanInterval ?? DefaultCacheCleanInterval;
        _cleanTimer?.Dispose();
        _cleanTimer = null;
        if (interval > 0)
        {
            // qemu takes up to 2^32-1 seconds; a timer waits at most 2^32-2 ms (about 49 days), which for an
            // idle-memory clean-up is the same thing.
            var period = TimeSpan.FromMilliseconds(Math.Min(interval * 1000, MaxTimerMilliseconds));
            _cleanTimer = new Timer(static s => ((Qcow2Node)s!).CleanIdleCaches(), this, period, period);
        }
    }

    /// <summary>QEMU's arithmetic: (L2 cache bytes, refcount cache bytes), or its error for a bad combination.</summary>
    public static (long L2Bytes, long RefcountBytes) ComputeCacheSizes(Qcow2CacheOptions o, int clusterSize, long virtualSize)
    {
        CheckNonNegative(o.CacheSize, "cache-size");
        CheckNonNegative(o.L2CacheSize, "l2-cache-size");
        CheckNonNegative(o.L2CacheEntrySize, "l2-cache-entry-size");
        CheckNonNegative(o.RefcountCacheSize, "refcount-cache-size");
        CheckNonNegative(o.CacheCleanInterval, "cache-clean-interval");

        // Enough L2 bytes to map the whole disk, in whole clusters.
        long l2Entries = (virtualSize + clusterSize - 1) / clusterSize;
        long maxL2 = ((l2Entries * 8) + clusterSize - 1) / clusterSize * clusterSize;
        long minRefcount = (long)MinRefcountCacheBlocks * clusterSize;
        long l2;
        long refcount;
        if (o.CacheSize is { } combined)
        {
            if (o.L2CacheSize != null && o.RefcountCacheSize != null)
                throw new BlockException(Errno.EINVAL, "cache-size, l2-cache-size and refcount-cache-size may not be set at the same time");
            if (o.L2CacheSize is { } l2Set)
            {
                if (l2Set > combined)
                    throw new BlockException(Errno.EINVAL, "l2-cache-size may not exceed cache-size");
                l2 = l2Set;
                refcount = combined - l2Set;
            }
            else if (o.RefcountCacheSize is { } refSet)
            {
                if (refSet > combined)
                    throw new BlockException(Errno.EINVAL, "refcount-cache-size may not exceed cache-size");
                refcount = refSet;
                l2 = combined - refSet;
            }
            else if (combined >= maxL2 + minRefcount)
            {
                l2 = maxL2;
                refcount = combined - maxL2;
            }
            else
            {
                refcount = Math.Min(combined, minRefcount);
                l2 = combined - refcount;
            }
        }
        else
        {
            l2 = Math.Min(maxL2, o.L2CacheSize ?? DefaultL2CacheMax);
            refcount = o.RefcountCacheSize ?? minRefcount;
        }

        long entry = o.L2CacheEntrySize ?? clusterSize;
        if (entry < 512 || entry > clusterSize || (entry & (entry - 1)) != 0)
            throw new BlockException(Errno.EINVAL, $"L2 cache entry size must be a power of two between 512 and the cluster size ({clusterSize})");
        if (o.CacheCleanInterval > uint.MaxValue)
            throw new BlockException(Errno.EINVAL, "Cache clean interval too big");
        return (l2, refcount);
    }

    private static void CheckNonNegative(long? value, string name)
    {
        if (value < 0)
            throw new BlockException(Errno.EINVAL, $"Parameter '{name}' expects a non-negative value");
    }

    /// <summary>
    /// Timer callback: gives back the memory of tables nobody used for a whole interval. It never waits for
    /// the metadata lock: a busy image is not idle, and the next tick tries again.
    /// </summary>
    private void CleanIdleCaches()
    {
        try
        {
            if (!_meta.Wait(0))
                return;
        }
        catch (ObjectDisposedException)
        {
            return;
        }

        try
        {
            _l2Cache.DropIdleClean();
            _refCache.DropIdleClean();
        }
        finally
        {
            try
            {
                _meta.Release();
            }
            catch (ObjectDisposedException)
            {
                // Closed while we cleaned: a timer thread must not take the process down for that.
            }
        }
    }

    private void StopCacheCleaning()
    {
        _cleanTimer?.Dispose();
        _cleanTimer = null;
    }
}
