using SharpBlock.Errors;

namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>
/// Overlap checks: no write reaches a cluster that holds live metadata. A refcount that says free on a table,
/// or a table entry that points at another table, otherwise lets guest data or a fresh table land on the
/// image's own structures: acknowledged, and the image destroyed. A hit marks the image corrupt, raises
/// BLOCK_IMAGE_CORRUPTED and fails the request with EIO; reads keep working.
/// </summary>
public sealed partial class Qcow2Node
{
    private Qcow2MetadataKinds _overlapChecks = Qcow2MetadataKinds.Cached;

    // Host clusters holding tables reachable from the in-memory L1 and refcount tables, each with the number
    // of entries naming it (a damaged image may name one cluster twice). Built for one table array and kept
    // up to date by SetL1Entry/SetRefTableEntry; a new array (a grown or reloaded table) rebuilds it.
    private readonly Dictionary<long, int> _activeL2Clusters = [];
    private readonly Dictionary<long, int> _refBlockClusters = [];
    private ulong[]? _indexedL1;
    private ulong[]? _indexedRefTable;

    // The snapshots' L2 tables, read from their L1 tables once per snapshot list (overlap-check 'all').
    private readonly Dictionary<long, int> _inactiveL2Clusters = [];
    private List<Qcow2Snapshot>? _indexedSnapshots;
    private long _snapshotTableBytes;

    private bool _corruptionReported;
    private bool _fatallyCorrupt;

    /// <summary>Which metadata writes are checked against (the overlap-check option; QEMU's 'cached' by default).</summary>
    public Qcow2MetadataKinds OverlapChecks
    {
        get => _overlapChecks;
        internal set => _overlapChecks = value;
    }

    private void SetL1Entry(long index, ulong value)
    {
        if (ReferenceEquals(_indexedL1, _l1))
        {
            Count(_activeL2Clusters, _l1[index], -1);
            Count(_activeL2Clusters, value, 1);
        }

        _l1[index] = value;
    }

    private void SetRefTableEntry(long index, ulong value)
    {
        if (ReferenceEquals(_indexedRefTable, _refTable))
        {
            Count(_refBlockClusters, _refTable[index], -1);
            Count(_refBlockClusters, value, 1);
        }

        _refTable[index] = value;
    }

    /// <summary>Counts the cluster(s) a table entry's offset covers: two when a damaged entry is unaligned.</summary>
    private void Count(Dictionary<long, int> index, ulong entry, int delta)
    {
        long offset = (long)(entry & Qcow2Layout.OffsetMask);
        if (offset == 0)
            return;
        long first = offset >> _clusterBits;
        long last = (offset + _clusterSize - 1) >> _clusterBits;
        for (long c = first; c <= last; c++)
        {
            int n = index.GetValueOrDefault(c) + delta;
            if (n > 0)
                index[c] = n;
            else
                index.Remove(c);
        }
    }

    private void EnsureActiveIndexes()
    {
        if (!ReferenceEquals(_indexedL1, _l1))
        {
            _activeL2Clusters.Clear();
            foreach (ulong e in _l1)
                Count(_activeL2Clusters, e, 1);
            _indexedL1 = _l1;
        }

        if (!ReferenceEquals(_indexedRefTable, _refTable))
        {
            _refBlockClusters.Clear();
            foreach (ulong e in _refTable)
                Count(_refBlockClusters, e, 1);
            _indexedRefTable = _refTable;
        }
    }

    private async ValueTask EnsureSnapshotIndexAsync(bool inactiveL2)
    {
        if (ReferenceEquals(_indexedSnapshots, _snapshots))
            return;
        _snapshotTableBytes = SnapshotTableBytes();
        _inactiveL2Clusters.Clear();
        if (inactiveL2)
        {
            foreach (var s in _snapshots)
            {
                if (s.L1Size == 0 || s.L1TableOffset + (s.L1Size * 8L) > _file.Length)
                    continue;
                foreach (ulong e in await ReadRawTableAsync(s.L1TableOffset, s.L1Size, CancellationToken.None).ConfigureAwait(false))
                    Count(_inactiveL2Clusters, e, 1);
            }
        }

        _indexedSnapshots = _snapshots;
    }

    /// <summary>
    /// The first metadata kind (in QEMU's order) that [offset, offset + size) touches, ignoring the kinds in
    /// ignore (a table's own write-back ignores its own kind). Caller holds _meta.
    /// </summary>
    private async ValueTask<Qcow2MetadataKinds> FindOverlapAsync(Qcow2MetadataKinds ignore, long offset, long size)
    {
        var chk = _overlapChecks & ~ignore;
        if (size <= 0 || chk == Qcow2MetadataKinds.None)
            return Qcow2MetadataKinds.None;
        if ((chk & Qcow2MetadataKinds.MainHeader) != 0 && offset < _clusterSize)
            return Qcow2MetadataKinds.MainHeader;

        // Metadata is allocated in whole clusters: a write anywhere in one touches it.
        long start = offset & ~((long)_clusterSize - 1);
        long end = (offset + size + _clusterSize - 1) & ~((long)_clusterSize - 1);
        bool Hit(long at, long length) => length > 0 && at < end && start < at + length;

        if ((chk & Qcow2MetadataKinds.ActiveL1) != 0 && Hit(_l1Offset, _l1.Length * 8L))
            return Qcow2MetadataKinds.ActiveL1;
        if ((chk & Qcow2MetadataKinds.RefcountTable) != 0 && Hit(_refTableOffset, _refTable.Length * 8L))
            return Qcow2MetadataKinds.RefcountTable;
        if ((chk & Qcow2MetadataKinds.BitmapDirectory) != 0 && Hit(_bitmapDirOffset, _bitmapDirSize))
            return Qcow2MetadataKinds.BitmapDirectory;
        if ((chk & (Qcow2MetadataKinds.SnapshotTable | Qcow2MetadataKinds.InactiveL1 | Qcow2MetadataKinds.InactiveL2)) != 0 && _snapshots.Count > 0)
        {
            await EnsureSnapshotIndexAsync((chk & Qcow2MetadataKinds.InactiveL2) != 0).ConfigureAwait(false);
            if ((chk & Qcow2MetadataKinds.SnapshotTable) != 0 && Hit((long)_header.SnapshotsOffset, _snapshotTableBytes))
                return Qcow2MetadataKinds.SnapshotTable;
            if ((chk & Qcow2MetadataKinds.InactiveL1) != 0)
            {
                foreach (var s in _snapshots)
                {
                    if (Hit(s.L1TableOffset, s.L1Size * 8L))
                        return Qcow2MetadataKinds.InactiveL1;
                }
            }
        }

        EnsureActiveIndexes();
        if ((chk & Qcow2MetadataKinds.ActiveL2) != 0 && AnyIn(_activeL2Clusters, start, end))
            return Qcow2MetadataKinds.ActiveL2;
        if ((chk & Qcow2MetadataKinds.RefcountBlock) != 0 && AnyIn(_refBlockClusters, start, end))
            return Qcow2MetadataKinds.RefcountBlock;
        if ((chk & Qcow2MetadataKinds.InactiveL2) != 0 && _snapshots.Count > 0 && AnyIn(_inactiveL2Clusters, start, end))
            return Qcow2MetadataKinds.InactiveL2;
        return Qcow2MetadataKinds.None;
    }

    /// <summary>Whether any indexed cluster lies in [start, end): by lookups, or by a walk when the index is the smaller.</summary>
    private bool AnyIn(Dictionary<long, int> index, long start, long end)
    {
        if (index.Count == 0)
            return false;
        long first = start >> _clusterBits;
        long last = end >> _clusterBits;
        if (last - first <= index.Count)
        {
            for (long c = first; c < last; c++)
            {
                if (index.ContainsKey(c))
                    return true;
            }

            return false;
        }

        foreach (long c in index.Keys)
        {
            if (c >= first && c < last)
                return true;
        }

        return false;
    }

    /// <summary>Refuses a write that would land on live metadata: marks the image corrupt and throws EIO. Caller holds _meta.</summary>
    private async ValueTask PreWriteCheckAsync(Qcow2MetadataKinds ignore, long offset, long size)
    {
        var hit = await FindOverlapAsync(ignore, offset, size).ConfigureAwait(false);
        if (hit != Qcow2MetadataKinds.None)
            throw await SignalCorruptionAsync(true, offset, size, $"Preventing invalid write on metadata (overlaps with {Qcow2MetadataKindNames.Describe(hit)})").ConfigureAwait(false);
    }

    /// <summary>
    /// A table that lies past the end of the file was read as zeros (a cut image, or a damaged offset); every
    /// table we create is written whole when it is made, so rewriting one out there means the header lies, and
    /// would grow the file to wherever it points.
    /// </summary>
    private async ValueTask RefuseRewritePastEndAsync(string table, long offset, long size)
    {
        if (offset + size > _file.Length)
            throw await SignalCorruptionAsync(true, offset, size, $"The {table} at offset 0x{offset:x} lies past the end of the image file").ConfigureAwait(false);
    }

    /// <summary>
    /// Damage found at run time. A fatal finding sets the corrupt bit (nothing opens the image read-write
    /// again until it is repaired) and makes this node refuse writes; reads go on, so a guest or a backup can
    /// still get its data out. The event goes out once per image, as QEMU suppresses the rest.
    /// </summary>
    private async ValueTask<BlockException> SignalCorruptionAsync(bool fatal, long offset, long size, string message)
    {
        bool first = !_corruptionReported;
        _corruptionReported = true;
        if (fatal && !ReadOnly)
        {
            _fatallyCorrupt = true;
            try
            {
                await SetIncompatibleBitAsync(Qcow2Layout.IncompatCorrupt, true, CancellationToken.None).ConfigureAwait(false);
            }
            catch (BlockException)
            {
                // The write of the bit failing must not hide the finding; the request fails either way.
            }
        }

        if (first)
            RaiseImageCorrupted(message, offset >= 0 ? offset : null, size >= 0 ? size : null, fatal);
        string text = fatal
            ? $"qcow2: Marking image as corrupt: {message}; further corruption events will be suppressed"
            : $"qcow2: Image is corrupt: {message}; further non-fatal corruption events will be suppressed";
        return new BlockException(Errno.EIO, text);
    }

    /// <summary>After a fatal finding every change is refused: the metadata it would build on is known bad.</summary>
    private void RefuseWritesIfCorrupt()
    {
        if (_fatallyCorrupt)
            throw new BlockException(Errno.EIO, $"qcow2: Image '{FileName}' is corrupt; writes are refused until it is repaired");
    }
}
