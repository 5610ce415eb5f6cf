using System.Numerics;

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

    public DirtyBitmap(long length, long granularity)
    {
        if (granularity <= 0 || (granularity & (granularity - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(granularity), "granularity must be a power of two");
        Granularity = granularity;
        Length = length;
        _words = new ulong[(ChunkCount(length) + 63) / 64];
    }

    /// <summary>Bytes per bit: a power of two, up to 2 GiB for named bitmaps (QEMU's limit).</summary>
    public long Granularity { get; }

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

    /// <summary>Dirty chunks times the granularity, not cut at the end: what QEMU's named bitmaps report as count.</summary>
    public long DirtyChunkBytes
    {
        get
        {
            lock (_lock)
                return _dirtyChunks * Granularity;
        }
    }

    /// <summary>Follows a resize of the device: a grown part starts clean, bits past a new end are dropped.</summary>
    public void Resize(long length)
    {
        lock (_lock)
        {
            long chunks = ChunkCount(length);
            Array.Resize(ref _words, (int)((chunks + 63) / 64));
            if ((chunks & 63) != 0)
                _words[^1] &= (1UL << (int)(chunks & 63)) - 1;
            Length = length;
            _dirtyChunks = 0;
            foreach (ulong w in _words)
                _dirtyChunks += BitOperations.PopCount(w);
        }
    }

    /// <summary>Cleans every chunk.</summary>
    public void ClearAll()
    {
        lock (_lock)
        {
            Array.Clear(_words);
            _dirtyChunks = 0;
        }
    }

    /// <summary>
    /// Marks here every range dirty in source, whatever either granularity is (a coarser chunk here covers
    /// each finer one there), so a merge never loses a write.
    /// </summary>
    public void Merge(DirtyBitmap source)
    {
        if (ReferenceEquals(source, this))
            return;
        long offset = 0;
        // The last run ends at the source's length, which may lie inside its last chunk: stop there.
        while (offset < source.Length && source.TryGetNextDirty(offset, long.MaxValue, out long start, out long length))
        {
            Set(start, length);
            offset = start + length;
        }
    }

    /// <summary>A copy of the bits (same length and granularity), for undoing a change.</summary>
    public DirtyBitmap Clone()
    {
        var copy = new DirtyBitmap(Length, Granularity);
        lock (_lock)
        {
            Array.Copy(_words, copy._words, _words.Length);
            copy._dirtyChunks = _dirtyChunks;
        }

        return copy;
    }

    /// <summary>
    /// Copies the bits of chunks [8 * firstByte, 8 * (firstByte + dest.Length)) into dest, eight chunks a byte,
    /// the lowest chunk in the lowest bit (qcow2's bitmap data layout); chunks past the end read as clean.
    /// </summary>
    public void GetBytes(long firstByte, Span<byte> dest)
    {
        dest.Clear();
        lock (_lock)
        {
            long total = (long)_words.Length * 8;
            for (int i = 0; i < dest.Length && firstByte + i < total; i++)
            {
                long b = firstByte + i;
                dest[i] = (byte)(_words[b >> 3] >> (int)((b & 7) * 8));
            }
        }
    }

    /// <summary>Sets the chunks whose bits are set in source (layout as <see cref="GetBytes"/>); bits past the end are ignored.</summary>
    public void SetBytes(long firstByte, ReadOnlySpan<byte> source)
    {
        lock (_lock)
        {
            long total = (long)_words.Length * 8;
            for (int i = 0; i < source.Length && firstByte + i < total; i++)
            {
                long b = firstByte + i;
                _words[b >> 3] |= (ulong)source[i] << (int)((b & 7) * 8);
            }
        }

        Resize(Length);
    }

    /// <summary>Puts back the bits of a copy made by <see cref="Clone"/> (the length may have changed since).</summary>
    public void Restore(DirtyBitmap copy)
    {
        lock (_lock)
        {
            Array.Clear(_words);
            Array.Copy(copy._words, _words, Math.Min(copy._words.Length, _words.Length));
        }

        Resize(Length);
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
                long limit = maxLength / Granularity >= chunks ? chunks : c + Math.Max(1, maxLength / Granularity);
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
