using System.Buffers.Binary;
using SharpBlock.Errors;
using SharpBlock.Io;

namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>L2 tables, refcounts, cluster allocation and the ordered write-back of metadata.</summary>
public sealed partial class Qcow2Node
{
    /// <summary>Why a cluster is freed, for the pass-discard-* options.</summary>
    internal enum FreeReason
    {
        Request,
        Snapshot,
        Other,
    }

    private readonly Dictionary<long, FreeReason> _pendingFreeReasons = [];

    // ---- L2 tables (caller holds _meta) ------------------------------------------------------------

    private async ValueTask<Qcow2Cache.Entry> LoadL2Async(long offset, string field, long fieldOffset)
    {
        var e = _l2Cache.TryGet(offset);
        if (e != null)
            return e;
        if ((offset & (_clusterSize - 1)) != 0)
            throw await SignalCorruptionAsync(true, fieldOffset, -1, $"L2 table offset 0x{offset:x} unaligned ({field} at 0x{fieldOffset:x})").ConfigureAwait(false);
        // A table past the end of the file reads as zeros, as QEMU reads it; the overlap checks keep the
        // allocator from handing its cluster out as well.
        byte[] data = new byte[_clusterSize];
        Debug(Schema.BlkdebugEvent.L2Load);
        await _file.ReadAsync(offset, data).ConfigureAwait(false);
        return await _l2Cache.AddAsync(offset, data, dirty: false).ConfigureAwait(false);
    }

    private static ulong GetEntry(byte[] table, int index) => BinaryPrimitives.ReadUInt64BigEndian(table.AsSpan(index * 8));

    private static void SetEntry(byte[] table, int index, ulong value) => BinaryPrimitives.WriteUInt64BigEndian(table.AsSpan(index * 8), value);

    /// <summary>One run of guest clusters with the same mapping kind (and contiguous host clusters for data).</summary>
    internal readonly record struct Mapping(Qcow2ClusterKind Kind, Qcow2L2Entry Entry, int Clusters);

    /// <summary>Looks up the mapping of the cluster holding guestOffset and how far it extends (caller holds _meta).</summary>
    private async ValueTask<Mapping> LookupLockedAsync(long guestOffset, long maxBytes)
    {
        long ci = guestOffset >> _clusterBits;
        long l1i = ci >> _l2Bits;
        int l2i = (int)(ci & (L2Entries - 1));
        long inCluster = guestOffset & (_clusterSize - 1);
        int max = (int)Math.Min((inCluster + maxBytes + _clusterSize - 1) >> _clusterBits, L2Entries - l2i);
        if (max < 1)
            max = 1;
        if (l1i >= _l1.Length)
            return new Mapping(Qcow2ClusterKind.Unallocated, default, max);
        long l2Offset = (long)(_l1[l1i] & Qcow2Layout.OffsetMask);
        if (l2Offset == 0)
            return new Mapping(Qcow2ClusterKind.Unallocated, default, max);
        var l2 = await LoadL2Async(l2Offset, "L1 entry", _l1Offset + (l1i * 8)).ConfigureAwait(false);
        var first = new Qcow2L2Entry(GetEntry(l2.Data, l2i));
        var kind = first.Kind(V3);
        await ValidateL2EntryAsync(first, kind, l2Offset, l2i).ConfigureAwait(false);
        int n = 1;
        while (n < max)
        {
            var next = new Qcow2L2Entry(GetEntry(l2.Data, l2i + n));
            var k = next.Kind(V3);
            if (k != kind)
                break;
            if (kind is Qcow2ClusterKind.Normal or Qcow2ClusterKind.ZeroAllocated)
            {
                if (next.HostOffset != first.HostOffset + ((long)n << _clusterBits) || next.IsCopied != first.IsCopied)
                    break;
                await ValidateL2EntryAsync(next, k, l2Offset, l2i + n).ConfigureAwait(false);
            }
            else if (kind == Qcow2ClusterKind.Compressed)
            {
                break;
            }

            n++;
        }

        return new Mapping(kind, first, n);
    }

    /// <summary>
    /// What QEMU refuses to use at run time: an unaligned cluster offset, and the zero flag on a version 2
    /// image (where it has no meaning, so the entry cannot be trusted). Reserved bits and a copied flag on a
    /// compressed entry are read past, as QEMU reads them; img check reports them.
    /// </summary>
    private async ValueTask ValidateL2EntryAsync(Qcow2L2Entry e, Qcow2ClusterKind kind, long l2Offset, int l2Index)
    {
        if (kind is Qcow2ClusterKind.Normal or Qcow2ClusterKind.ZeroAllocated)
        {
            if (!V3 && (e.Raw & Qcow2Layout.OflagZero) != 0)
                throw await SignalCorruptionAsync(true, l2Offset + (l2Index * 8L), -1, $"Zero cluster entry found in pre-v3 image (L2 offset: 0x{l2Offset:x}, L2 index: 0x{l2Index:x})").ConfigureAwait(false);
            if ((e.HostOffset & (_clusterSize - 1)) != 0)
                throw await SignalCorruptionAsync(true, e.HostOffset, -1, $"Cluster allocation offset 0x{e.HostOffset:x} unaligned (L2 offset: 0x{l2Offset:x}, L2 index: 0x{l2Index:x})").ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Returns the L2 table for l1Index ready to be modified: allocated if missing, copied if shared with a
    /// snapshot. The caller holds _meta and marks the entry dirty after changing it.
    /// </summary>
    private async ValueTask<Qcow2Cache.Entry> GetWritableL2Async(long l1Index)
    {
        ulong l1e = _l1[l1Index];
        long old = (long)(l1e & Qcow2Layout.OffsetMask);
        if (old != 0 && (l1e & Qcow2Layout.OflagCopied) != 0)
        {
            // A table past the end of the file reads as zeros, but changing it in place would write a table
            // out there (growing the file to wherever a damaged entry points): refuse, as damage.
            if (old + _clusterSize > _file.Length && _l2Cache.TryGet(old) == null)
                throw await SignalCorruptionAsync(true, old, _clusterSize, $"L2 table offset 0x{old:x} lies past the end of the image file (L1 index: 0x{l1Index:x})").ConfigureAwait(false);
            return await LoadL2Async(old, "L1 entry", _l1Offset + (l1Index * 8)).ConfigureAwait(false);
        }

        byte[] data = new byte[_clusterSize];
        if (old != 0)
        {
            Debug(Schema.BlkdebugEvent.L2AllocCowRead);
            var src = await LoadL2Async(old, "L1 entry", _l1Offset + (l1Index * 8)).ConfigureAwait(false);
            src.Data.CopyTo(data, 0);
            // The copy owns its data clusters only through the snapshot too: clear the copied flags and
            // let the data path copy them on write.
            for (int i = 0; i < L2Entries; i++)
            {
                ulong v = GetEntry(data, i);
                if ((v & Qcow2Layout.OflagCopied) != 0)
                    SetEntry(data, i, v & ~Qcow2Layout.OflagCopied);
            }
        }

        long fresh = await AllocateClustersLockedAsync(1).ConfigureAwait(false);
        var entry = await _l2Cache.AddAsync(fresh, data, dirty: true).ConfigureAwait(false);
        entry.Fresh = true;
        SetL1Entry(l1Index, (ulong)fresh | Qcow2Layout.OflagCopied);
        _l1Dirty = true;
        if (old != 0)
            QueueFree(old, 1, FreeReason.Other);
        return entry;
    }

    // ---- Refcounts (caller holds _meta) --------------------------------------------------------------

    private async ValueTask<Qcow2Cache.Entry?> LoadRefBlockAsync(long tableIndex)
    {
        if (tableIndex >= _refTable.Length)
            return null;
        long offset = (long)(_refTable[tableIndex] & Qcow2Layout.OffsetMask);
        if (offset == 0)
            return null;
        var e = _refCache.TryGet(offset);
        if (e != null)
            return e;
        if ((offset & (_clusterSize - 1)) != 0)
            throw await SignalCorruptionAsync(true, offset, -1, $"Refblock offset 0x{offset:x} unaligned (reftable index: 0x{tableIndex:x})").ConfigureAwait(false);
        if (offset + _clusterSize > _file.Length)
            throw await SignalCorruptionAsync(true, offset, -1, $"Refblock at 0x{offset:x} lies outside the image file (reftable index: 0x{tableIndex:x})").ConfigureAwait(false);
        byte[] data = new byte[_clusterSize];
        Debug(Schema.BlkdebugEvent.RefblockLoad);
        await _file.ReadAsync(offset, data).ConfigureAwait(false);
        return await _refCache.AddAsync(offset, data, dirty: false).ConfigureAwait(false);
    }

    private async ValueTask<ulong> GetRefcountLockedAsync(long cluster)
    {
        var block = await LoadRefBlockAsync(cluster >> _refBlockBits).ConfigureAwait(false);
        if (block == null)
            return 0;
        return Qcow2Refcount.Get(block.Data, _refOrder, (int)(cluster & (RefBlockEntries - 1)));
    }

    private async ValueTask UpdateRefcountLockedAsync(long cluster, long delta)
    {
        long ti = cluster >> _refBlockBits;
        var block = await LoadRefBlockAsync(ti).ConfigureAwait(false);
        if (block == null)
        {
            if (delta < 0)
                throw Corrupt("refcount", cluster << _clusterBits, "freeing a cluster with no refcount block");
            await CreateRefBlockLockedAsync(ti).ConfigureAwait(false);
            block = await LoadRefBlockAsync(ti).ConfigureAwait(false) ?? throw new BlockException(Errno.EIO, "refcount block vanished");
        }

        int idx = (int)(cluster & (RefBlockEntries - 1));
        ulong cur = Qcow2Refcount.Get(block.Data, _refOrder, idx);
        ulong max = Qcow2Refcount.MaxValue(_refOrder);
        ulong next;
        if (delta >= 0)
        {
            if ((ulong)delta > max - cur)
                throw new BlockException(Errno.ERANGE, $"Refcount of cluster {cluster} would exceed {max}");
            next = cur + (ulong)delta;
        }
        else
        {
            if ((ulong)(-delta) > cur)
                throw await SignalCorruptionAsync(true, cluster << _clusterBits, _clusterSize, $"Refcount of cluster 0x{cluster:x} would become negative").ConfigureAwait(false);
            next = cur - (ulong)(-delta);
        }

        Debug(Schema.BlkdebugEvent.RefblockUpdate);
        Qcow2Refcount.Set(block.Data, _refOrder, idx, next);
        block.Dirty = true;
        if (next == 0)
        {
            if (cluster < _freeHint)
                _freeHint = cluster;
            // The packing cursor must not point into a cluster that can now be handed to someone else.
            if (_compressedCursor != 0 && (_compressedCursor >> _clusterBits) == cluster)
                _compressedCursor = 0;
        }
    }

    /// <summary>
    /// Creates the refcount block for table index ti. It goes into the first cluster of the range it covers:
    /// that range has no refcount block, so none of its clusters are in use, and the block describes itself.
    /// </summary>
    private async ValueTask CreateRefBlockLockedAsync(long ti)
    {
        Debug(Schema.BlkdebugEvent.RefblockAlloc);
        if (ti >= _refTable.Length)
        {
            await GrowRefTableLockedAsync(ti).ConfigureAwait(false);
            if ((_refTable[ti] & Qcow2Layout.OffsetMask) != 0)
                return;
        }

        // Prefer a free cluster that an existing block already describes: placing every new block at the
        // start of its own range would cut each range, and no run longer than one range could ever be found.
        long free = await FindFreeCoveredClusterLockedAsync().ConfigureAwait(false);
        if (free >= 0)
        {
            long at = free << _clusterBits;
            await PreWriteCheckAsync(Qcow2MetadataKinds.None, at, _clusterSize).ConfigureAwait(false);
            await UpdateRefcountLockedAsync(free, 1).ConfigureAwait(false);
            await WriteDirtyRefBlocksAsync().ConfigureAwait(false);
            byte[] empty = new byte[_clusterSize];
            Debug(Schema.BlkdebugEvent.RefblockAllocWrite);
            await _file.WriteAsync(at, empty).ConfigureAwait(false);
            // The block and its own refcount must be on disk before the table entry that makes it live.
            await _file.FlushAsync().ConfigureAwait(false);
            await WriteRefTableEntryAsync(ti, (ulong)at).ConfigureAwait(false);
            await _refCache.AddAsync(at, empty, dirty: false).ConfigureAwait(false);
            return;
        }

        long cluster = ti << _refBlockBits;
        long offset = cluster << _clusterBits;
        // No block describes this range, so its clusters look free; if the image's own structures sit there
        // (a refcount table entry lost), the self-describing block would land on them.
        if (offset == 0)
            throw await SignalCorruptionAsync(true, 0, _clusterSize, "Preventing invalid allocation of refcount block at offset 0").ConfigureAwait(false);
        await PreWriteCheckAsync(Qcow2MetadataKinds.None, offset, _clusterSize).ConfigureAwait(false);
        byte[] data = new byte[_clusterSize];
        Qcow2Refcount.Set(data, _refOrder, 0, 1);
        Debug(Schema.BlkdebugEvent.RefblockAllocWrite);
        await _file.WriteAsync(offset, data).ConfigureAwait(false);
        // The block must be on disk before the table entry that makes it live.
        await _file.FlushAsync().ConfigureAwait(false);
        await WriteRefTableEntryAsync(ti, (ulong)offset).ConfigureAwait(false);
        await _refCache.AddAsync(offset, data, dirty: false).ConfigureAwait(false);
    }

    /// <summary>
    /// Makes a new refcount block live: its table entry, in the file and then in memory. Nothing writes the
    /// table again later, so an entry the file refused must not live on in memory: refcounts kept in a block
    /// the file's table does not name would read as zero to everyone else (found by the iotests-026 matrix).
    /// The block is then merely leaked.
    /// </summary>
    private async ValueTask WriteRefTableEntryAsync(long ti, ulong value)
    {
        await PreWriteCheckAsync(Qcow2MetadataKinds.RefcountTable, _refTableOffset + (ti * 8), 8).ConfigureAwait(false);
        await RefuseRewritePastEndAsync("refcount table", _refTableOffset, _refTable.Length * 8L).ConfigureAwait(false);
        byte[] e = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(e, value);
        Debug(Schema.BlkdebugEvent.RefblockAllocHookup);
        await _file.WriteAsync(_refTableOffset + (ti * 8), e).ConfigureAwait(false);
        SetRefTableEntry(ti, value);
    }

    /// <summary>A free cluster inside a range that has a refcount block, or -1.</summary>
    private async ValueTask<long> FindFreeCoveredClusterLockedAsync()
    {
        long c = _freeHint;
        while ((c >> _refBlockBits) < _refTable.Length)
        {
            if ((_refTable[c >> _refBlockBits] & Qcow2Layout.OffsetMask) == 0)
            {
                c = ((c >> _refBlockBits) + 1) << _refBlockBits;
                continue;
            }

            if (await GetRefcountLockedAsync(c).ConfigureAwait(false) == 0 && !_pendingFrees.ContainsKey(c << _clusterBits))
                return c;
            c++;
        }

        return -1;
    }

    /// <summary>
    /// Moves the refcount table to a bigger one covering index needed. The new table and the refcount
    /// blocks describing it go into the range of needed, which no refcount block covers yet, so they are
    /// written complete before the header switches to them; the old table is freed afterwards.
    /// </summary>
    private async ValueTask GrowRefTableLockedAsync(long needed)
    {
        Debug(Schema.BlkdebugEvent.ReftableGrow);
        long rbEntries = RefBlockEntries;
        long entriesPerCluster = _clusterSize / 8;
        long newEntries = Math.Max(needed + 1, _refTable.Length + (_refTable.Length / 2) + 1);
        long tableClusters;
        long blocks;
        while (true)
        {
            tableClusters = (newEntries + entriesPerCluster - 1) / entriesPerCluster;
            blocks = (tableClusters + rbEntries - 2) / (rbEntries - 1);
            long areaEnd = needed + blocks;
            if (areaEnd <= newEntries)
                break;
            newEntries = areaEnd;
        }

        newEntries = tableClusters * entriesPerCluster;
        if (newEntries * 8 > Qcow2Layout.MaxRefcountTableBytes)
            throw new BlockException(Errno.EFBIG, "qcow2: the refcount table would exceed its size limit");

        long baseCluster = needed << _refBlockBits;
        long areaClusters = blocks + tableClusters;
        // The area has no refcount block yet, so nothing vouches that it is free: check it like an allocation.
        await PreWriteCheckAsync(Qcow2MetadataKinds.None, baseCluster << _clusterBits, areaClusters << _clusterBits).ConfigureAwait(false);
        var newTable = new ulong[newEntries];
        Array.Copy(_refTable, newTable, _refTable.Length);
        byte[] block = new byte[_clusterSize];
        Debug(Schema.BlkdebugEvent.RefblockAllocWriteBlocks);
        for (long b = 0; b < blocks; b++)
        {
            Array.Clear(block);
            long first = (needed + b) << _refBlockBits;
            for (long c = first; c < first + rbEntries && c < baseCluster + areaClusters; c++)
                Qcow2Refcount.Set(block, _refOrder, (int)(c - first), 1);
            long blockOffset = (baseCluster + b) << _clusterBits;
            await _file.WriteAsync(blockOffset, block).ConfigureAwait(false);
            newTable[needed + b] = (ulong)blockOffset;
        }

        long tableOffset = (baseCluster + blocks) << _clusterBits;
        byte[] tbytes = new byte[tableClusters << _clusterBits];
        for (long i = 0; i < newEntries; i++)
            BinaryPrimitives.WriteUInt64BigEndian(tbytes.AsSpan((int)(i * 8)), newTable[i]);
        Debug(Schema.BlkdebugEvent.RefblockAllocWriteTable);
        await _file.WriteAsync(tableOffset, tbytes).ConfigureAwait(false);
        // Dirty blocks of the old table must be durable before the header points at the new table.
        await WriteDirtyRefBlocksAsync().ConfigureAwait(false);
        await _file.FlushAsync().ConfigureAwait(false);

        byte[] hdr = new byte[12];
        BinaryPrimitives.WriteUInt64BigEndian(hdr, (ulong)tableOffset);
        BinaryPrimitives.WriteUInt32BigEndian(hdr.AsSpan(8), (uint)tableClusters);
        Debug(Schema.BlkdebugEvent.RefblockAllocSwitchTable);
        await _file.WriteAsync(Qcow2Header.RefcountTableOffsetOffset, hdr).ConfigureAwait(false);
        await _file.FlushAsync().ConfigureAwait(false);

        long oldOffset = _refTableOffset;
        long oldClusters = ((long)_refTable.Length * 8) >> _clusterBits;
        _refTable = newTable;
        _refTableOffset = tableOffset;
        _header = _header with { RefcountTableOffset = (ulong)tableOffset, RefcountTableClusters = (uint)tableClusters };
        QueueFree(oldOffset, oldClusters, FreeReason.Other);
    }

    /// <summary>
    /// Allocates n contiguous clusters (refcount 1 each); returns the host offset of the first. The run is
    /// checked against live metadata before anyone may write it: a refcount of zero on a table is damage.
    /// </summary>
    private async ValueTask<long> AllocateClustersLockedAsync(long n)
    {
        Debug(Schema.BlkdebugEvent.ClusterAlloc);
        while (true)
        {
            long start = _freeHint;
            long run = 0;
            long c = start;
            while (run < n)
            {
                if (await GetRefcountLockedAsync(c).ConfigureAwait(false) == 0 && !_pendingFrees.ContainsKey(c << _clusterBits))
                {
                    run++;
                }
                else
                {
                    run = 0;
                    start = c + 1;
                }

                c++;
            }

            // Make sure every refcount block the run needs exists; creating one takes a cluster, maybe ours.
            bool created = false;
            for (long ti = start >> _refBlockBits; ti <= (start + n - 1) >> _refBlockBits; ti++)
            {
                if (ti >= _refTable.Length || (_refTable[ti] & Qcow2Layout.OffsetMask) == 0)
                {
                    await CreateRefBlockLockedAsync(ti).ConfigureAwait(false);
                    // Each pass must add a block, or the search would find the same uncovered run forever.
                    if (ti >= _refTable.Length || (_refTable[ti] & Qcow2Layout.OffsetMask) == 0)
                        throw await SignalCorruptionAsync(true, start << _clusterBits, n << _clusterBits, $"Refcount block for reftable index 0x{ti:x} could not be created").ConfigureAwait(false);
                    created = true;
                }
            }

            if (created)
                continue;
            long offset = start << _clusterBits;
            await PreWriteCheckAsync(Qcow2MetadataKinds.None, offset, n << _clusterBits).ConfigureAwait(false);
            for (long i = 0; i < n; i++)
                await UpdateRefcountLockedAsync(start + i, 1).ConfigureAwait(false);
            _freeHint = start + n;
            return offset;
        }
    }

    /// <summary>
    /// A cluster dropped from a table is freed only after that table change is on disk (see the flush),
    /// so a crash cannot leave it both referenced and free.
    /// </summary>
    private void QueueFree(long offset, long clusters, FreeReason reason)
    {
        for (long i = 0; i < clusters; i++)
        {
            long o = offset + (i << _clusterBits);
            _pendingFrees[o] = _pendingFrees.GetValueOrDefault(o) + 1;
            _pendingFreeReasons[o] = reason;
        }
    }

    /// <summary>Queues the release of whatever an L2 entry owned.</summary>
    private void ReleaseEntry(Qcow2L2Entry e, FreeReason reason)
    {
        switch (e.Kind(V3))
        {
            case Qcow2ClusterKind.Normal:
            case Qcow2ClusterKind.ZeroAllocated:
                QueueFree(e.HostOffset, 1, reason);
                break;
            case Qcow2ClusterKind.Compressed:
                {
                    long off = e.CompressedOffset(_clusterBits) & ~511L;
                    long end = off + ((long)e.CompressedSectors(_clusterBits) * 512) - 1;
                    for (long c = off >> _clusterBits; c <= end >> _clusterBits; c++)
                        QueueFree(c << _clusterBits, 1, reason);
                    break;
                }
        }
    }

    // ---- Write-back ------------------------------------------------------------------------------------

    private async ValueTask WriteDirtyRefBlocksAsync()
    {
        foreach (var e in _refCache.DirtyEntries())
            await WriteBackRefBlockAsync(e).ConfigureAwait(false);
    }

    private async ValueTask WriteBackRefBlockAsync(Qcow2Cache.Entry e)
    {
        await PreWriteCheckAsync(Qcow2MetadataKinds.RefcountBlock, e.Offset, _clusterSize).ConfigureAwait(false);
        Debug(Schema.BlkdebugEvent.RefblockUpdatePart);
        await _file.WriteAsync(e.Offset, e.Data).ConfigureAwait(false);
        e.Dirty = false;
    }

    /// <summary>
    /// Evicting a dirty L2 table writes every dirty table in order: its refcounts must be on disk first, and
    /// a dirty L1 may point at other new tables that must not be left behind it.
    /// </summary>
    private async ValueTask WriteBackL2Async(Qcow2Cache.Entry e) => await FlushTablesLockedAsync(CancellationToken.None).ConfigureAwait(false);

    private async ValueTask WriteL1Async()
    {
        if (_l1.Length == 0)
        {
            _l1Dirty = false;
            return;
        }

        byte[] buf = new byte[_l1.Length * 8];
        for (int i = 0; i < _l1.Length; i++)
            BinaryPrimitives.WriteUInt64BigEndian(buf.AsSpan(i * 8), _l1[i]);
        await PreWriteCheckAsync(Qcow2MetadataKinds.ActiveL1, _l1Offset, buf.Length).ConfigureAwait(false);
        await RefuseRewritePastEndAsync("L1 table", _l1Offset, buf.Length).ConfigureAwait(false);
        Debug(Schema.BlkdebugEvent.L1Update);
        await _file.WriteAsync(_l1Offset, buf).ConfigureAwait(false);
        _l1Dirty = false;
    }

    /// <summary>
    /// Writes metadata in dependency order: refcount blocks, L2 tables, L1; only then are queued frees
    /// applied (their refcount blocks written last). Caller holds _meta.
    /// </summary>
    private async ValueTask FlushMetadataLockedAsync(CancellationToken ct)
    {
        await FlushTablesLockedAsync(ct).ConfigureAwait(false);
        if (DeferRefcountWrites)
            await WriteDirtyRefBlocksAsync().ConfigureAwait(false);
        if (_pendingFrees.Count > 0)
        {
            // The tables that dropped these references must be durable before the refcounts say free.
            await _file.FlushAsync(ct).ConfigureAwait(false);
            Debug(Schema.BlkdebugEvent.ClusterFree);
            var frees = new List<KeyValuePair<long, long>>(_pendingFrees);
            _pendingFrees.Clear();
            frees.Sort(static (a, b) => a.Key.CompareTo(b.Key));
            foreach (var (offset, count) in frees)
            {
                long cluster = offset >> _clusterBits;
                await UpdateRefcountLockedAsync(cluster, -count).ConfigureAwait(false);
                var reason = _pendingFreeReasons.GetValueOrDefault(offset);
                if (await GetRefcountLockedAsync(cluster).ConfigureAwait(false) == 0 && PassDiscard(reason))
                    await PunchAsync(offset, _clusterSize).ConfigureAwait(false);
            }

            _pendingFreeReasons.Clear();
            await WriteDirtyRefBlocksAsync().ConfigureAwait(false);
        }
    }

    private async ValueTask FlushTablesLockedAsync(CancellationToken ct)
    {
        var dirtyL2 = _l2Cache.DirtyEntries();
        // With lazy refcounts the blocks go out at the flush instead (FlushMetadataLockedAsync).
        bool refDirty = !DeferRefcountWrites && _refCache.DirtyEntries().Count > 0;
        if (refDirty)
        {
            await WriteDirtyRefBlocksAsync().ConfigureAwait(false);
            if (dirtyL2.Count > 0 || _l1Dirty)
                await _file.FlushAsync(ct).ConfigureAwait(false);
        }

        if (dirtyL2.Count > 0)
        {
            foreach (var e in dirtyL2)
            {
                await PreWriteCheckAsync(Qcow2MetadataKinds.ActiveL2, e.Offset, _clusterSize).ConfigureAwait(false);
                // A table's first write is QEMU's l2_alloc.write (QEMU writes a new table at once, we at the
                // next write-back); later ones are l2_update.
                Debug(e.Fresh ? Schema.BlkdebugEvent.L2AllocWrite : Schema.BlkdebugEvent.L2Update);
                await _file.WriteAsync(e.Offset, e.Data, RequestFlags.None, ct).ConfigureAwait(false);
                e.Dirty = false;
                e.Fresh = false;
            }

            if (_l1Dirty)
                await _file.FlushAsync(ct).ConfigureAwait(false);
        }

        if (_l1Dirty)
            await WriteL1Async().ConfigureAwait(false);
    }

    private bool PassDiscard(FreeReason reason) => reason switch
    {
        FreeReason.Request => PassDiscardRequest,
        FreeReason.Snapshot => PassDiscardSnapshot,
        _ => PassDiscardOther,
    };

    private async ValueTask PunchAsync(long offset, long length)
    {
        // The file node ignores discards unless its discard option allows them; punch through write-zeroes
        // with unmap instead, which every file node honours and which reads back as zeros.
        // A freed cluster that is still live metadata means two owners: punching it would wipe the table.
        await PreWriteCheckAsync(Qcow2MetadataKinds.None, offset, length).ConfigureAwait(false);
        if (offset + length <= _file.Length)
            await _file.WriteZeroesAsync(offset, length, RequestFlags.MayUnmap).ConfigureAwait(false);
    }

    protected override async ValueTask FlushCoreAsync(CancellationToken cancellationToken)
    {
        if (ReadOnly)
            return;
        try
        {
            Debug(Schema.BlkdebugEvent.FlushToOs);
            await _meta.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                await FlushMetadataLockedAsync(cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                _meta.Release();
            }

            Debug(Schema.BlkdebugEvent.FlushToDisk);
            await _file.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (BlockException)
        {
            // Tables written but not known durable: the cache looks clean, yet a close must not take that
            // as leave to clear the dirty bit (see CloseCoreAsync).
            _flushFailed = true;
            throw;
        }
    }
}
