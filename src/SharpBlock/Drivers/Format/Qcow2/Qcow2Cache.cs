namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>
/// A bounded cache of cluster-sized metadata tables (L2 tables or refcount blocks), keyed by host offset.
/// Only touched under the image's metadata lock. Dirty tables are written back by the owner, which knows
/// what must reach the disk first; eviction goes through <see cref="EvictAsync"/> for the same reason.
/// </summary>
internal sealed class Qcow2Cache
{
    private readonly Dictionary<long, Entry> _entries = [];
    private int _capacity;
    private long _clock;
    private long _cleanMark;

    public Qcow2Cache(int capacity, int tableSize)
    {
        _capacity = Math.Max(capacity, 4);
        TableSize = tableSize;
    }

    public int TableSize { get; }

    public int Count => _entries.Count;

    /// <summary>How many tables the cache holds at most (never fewer than 4, so one request's tables fit).</summary>
    public int Capacity
    {
        get => _capacity;
        set => _capacity = Math.Max(value, 4);
    }

    internal sealed class Entry(long offset, byte[] data)
    {
        public long Offset { get; } = offset;
        public byte[] Data { get; } = data;
        public bool Dirty { get; set; }

        /// <summary>A table allocated in memory that has not reached the file yet.</summary>
        public bool Fresh { get; set; }
        public long LastUse { get; set; }
    }

    /// <summary>Writes a dirty entry back, honouring its dependencies; supplied by the driver.</summary>
    public Func<Entry, ValueTask>? WriteBack { get; set; }

    public Entry? TryGet(long offset)
    {
        if (_entries.TryGetValue(offset, out var e))
        {
            e.LastUse = ++_clock;
            return e;
        }

        return null;
    }

    /// <summary>Adds a table, evicting the least recently used one when full.</summary>
    public async ValueTask<Entry> AddAsync(long offset, byte[] data, bool dirty)
    {
        while (_entries.Count >= _capacity)
            await EvictAsync().ConfigureAwait(false);
        var e = new Entry(offset, data) { Dirty = dirty, LastUse = ++_clock };
        _entries[offset] = e;
        return e;
    }

    private async ValueTask EvictAsync()
    {
        Entry? victim = null;
        foreach (var e in _entries.Values)
        {
            // Prefer clean entries: evicting them costs no write and no flush.
            if (victim == null || (victim.Dirty && !e.Dirty) || (victim.Dirty == e.Dirty && e.LastUse < victim.LastUse))
                victim = e;
        }

        if (victim == null)
            return;
        if (victim.Dirty && WriteBack != null)
            await WriteBack(victim).ConfigureAwait(false);
        _entries.Remove(victim.Offset);
    }

    public void Remove(long offset) => _entries.Remove(offset);

    /// <summary>
    /// Drops the clean entries not used since the previous call (cache-clean-interval): an idle image gives
    /// its memory back. Dirty entries stay; they leave through the ordered write-back only.
    /// </summary>
    public int DropIdleClean()
    {
        var idle = new List<long>();
        foreach (var e in _entries.Values)
        {
            if (!e.Dirty && e.LastUse <= _cleanMark)
                idle.Add(e.Offset);
        }

        foreach (long o in idle)
            _entries.Remove(o);
        _cleanMark = _clock;
        return idle.Count;
    }

    public void Clear() => _entries.Clear();

    public List<Entry> DirtyEntries()
    {
        var list = new List<Entry>();
        foreach (var e in _entries.Values)
        {
            if (e.Dirty)
                list.Add(e);
        }

        list.Sort(static (a, b) => a.Offset.CompareTo(b.Offset));
        return list;
    }
}
