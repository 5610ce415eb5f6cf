namespace SharpBlock.Jobs;

/// <summary>
/// One bit per granularity-sized chunk of a device: set by writes, cleared as a job copies the chunk.
/// A chunk written while it is being copied is simply set again and copied once more.
/// </summary>
public sealed class DirtyBitmap
{
    private readonly object _lock = new();
    private ulong[] _words;
    private long _dirtyChunks;

    public DirtyBitmap(long length, int granularity)
    {
        if (granularity <= 0 || (granularity & (granularity - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(granularity), "granularity must be a power of two");
        Granularity = granularity;
        Length = length;
        _words = new ulong[(ChunkCount(length) + 63) / 64];
    }

    public int Granularity { get; }

    public long Length { get; private set; }

    private long ChunkCount(long length) => (length + Granularity - 1) / Granularity;

    /// <summary>Dirty bytes (whole chunks), as query-block's dirty-bitmaps 'count' reports them.</summary>
    public long DirtyBytes
    {
        get
        {
            lock (_lock)
                return Math.Min(_dirtyChunks * Granularity, Length);
        }
    }

    public void Resize(long length)
    {
        lock (_lock)
        {
            Length = length;
            Array.Resize(ref _words, (int)((ChunkCount(length) + 63) / 64));
        }
    }

    public void Set(long offset, long length) => Update(offset, length, true);

    public void Clear(long offset, long length) => Update(offset, length, false);

    private void Update(long offset, long length, bool dirty)
    {
        if (length <= 0)
            return;
        long first = offset / Granularity;
        long last = Math.Min((offset + length - 1) / Granularity, ChunkCount(Length) - 1);
        lock (_lock)
        {
            for (long c = first; c <= last; c++)
            {
                ref ulong w = ref _words[c >> 6];
                ulong bit = 1UL << (int)(c & 63);
                bool was = (w & bit) != 0;
                if (was == dirty)
                    continue;
                w = dirty ? w | bit : w & ~bit;
                _dirtyChunks += dirty ? 1 : -1;
            }
        }
    }

    public bool IsDirty(long offset)
    {
        long c = offset / Granularity;
        lock (_lock)
            return (_words[c >> 6] & (1UL << (int)(c & 63))) != 0;
    }

    /// <summary>Finds the first dirty run at or after offset: its start and length (at most maxLength), or false.</summary>
    public bool TryGetNextDirty(long offset, long maxLength, out long start, out long length)
    {
        lock (_lock)
        {
            long chunks = ChunkCount(Length);
            for (long c = offset / Granularity; c < chunks; c++)
            {
                if (_words[c >> 6] == 0)
                {
                    c = (c | 63);
                    continue;
                }

                if ((_words[c >> 6] & (1UL << (int)(c & 63))) == 0)
                    continue;
                long end = c + 1;
                long limit = c + Math.Max(1, maxLength / Granularity);
                while (end < chunks && end < limit && (_words[end >> 6] & (1UL << (int)(end & 63))) != 0)
                    end++;
                start = c * Granularity;
                length = Math.Min(end * Granularity, Length) - start;
                return true;
            }
        }

        start = length = 0;
        return false;
    }
}
