using System.Buffers.Binary;
using SharpBlock.Errors;
using SharpBlock.Io;

namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>Consistency check: recount every reference from the tables, compare with the refcounts, repair.</summary>
public sealed partial class Qcow2Node
{
    private sealed class RefCounter(long clusters, int clusterBits, long fileLength, Action<string>? report)
    {
        public ulong[] Refs { get; } = new ulong[clusters];
        public ulong[] RefcountStructures { get; } = new ulong[clusters];
        public long Corruptions { get; set; }

        public void Add(long offset, long length, bool refcountStructure = false)
        {
            if (length <= 0)
                return;
            // A region reaching a whole cluster past the end of the file cannot be real: one finding, as
            // qemu-img check counts it, and nothing counted for it.
            if (offset + length - fileLength >= 1L << clusterBits)
            {
                report?.Invoke($"ERROR: counting reference for region exceeding the end of the file by one cluster or more: offset 0x{offset:x} size 0x{length:x}");
                Corruptions++;
                return;
            }

            long first = offset >> clusterBits;
            long last = (offset + length - 1) >> clusterBits;
            for (long c = first; c <= last; c++)
            {
                if (c < 0 || c >= Refs.Length)
                {
                    report?.Invoke($"ERROR: reference to cluster {c} (offset 0x{c << clusterBits:x}) beyond the end of the image file");
                    Corruptions++;
                    continue;
                }

                Refs[c]++;
                if (refcountStructure)
                    RefcountStructures[c]++;
            }
        }
    }

    /// <summary>The most clusters a check counts references for: 2 x 8 bytes each, 4 GiB of counters at most.</summary>
    private const long MaxCheckedClusters = 1L << 28;

    /// <summary>Runs a check (and a repair when asked), as qemu-img check does; report receives each finding.</summary>
    public async ValueTask<ImageCheckResult> CheckAsync(ImageCheckMode mode, Action<string>? report, CancellationToken cancellationToken = default)
    {
        if (mode != ImageCheckMode.None && ReadOnly)
            throw new BlockException(Errno.EPERM, "Cannot repair a read-only image");
        await _meta.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!ReadOnly)
                await FlushMetadataLockedAsync(cancellationToken).ConfigureAwait(false);
            if (mode == ImageCheckMode.None)
                return await CheckLockedAsync(report, cancellationToken).ConfigureAwait(false);
            return await RepairLockedAsync(mode, report, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _meta.Release();
        }
    }

    /// <summary>Repairs without taking the lock (the image is still being opened).</summary>
    private async ValueTask RepairAsync(ImageCheckMode mode, Action<string>? report, CancellationToken ct)
    {
        await RepairLockedAsync(mode, report, ct).ConfigureAwait(false);
    }

    private async ValueTask<ImageCheckResult> RepairLockedAsync(ImageCheckMode mode, Action<string>? report, CancellationToken ct)
    {
        var (first, counter) = await ScanLockedAsync(report, ct).ConfigureAwait(false);
        if (first.Corruptions == 0 && first.Leaks == 0)
            return first;
        if (mode == ImageCheckMode.All && _incompleteSnapshots.Count > 0)
        {
            // Entries past the end of the file describe nothing that was ever written: drop them, and every
            // entry after the first of them, then count again with the table that is left.
            report?.Invoke("Discarding incomplete snapshot table entries");
            var kept = _snapshots.GetRange(0, _incompleteSnapshots[0]);
            await WriteSnapshotTableLockedAsync(kept, ct).ConfigureAwait(false);
            _incompleteSnapshots.Clear();
            await FlushMetadataLockedAsync(ct).ConfigureAwait(false);
            (_, counter) = await ScanLockedAsync(null, ct).ConfigureAwait(false);
        }

        if (mode == ImageCheckMode.Leaks && first.Corruptions > 0)
        {
            // Freeing leaks while references are missing could free a cluster in use: refuse, as QEMU does.
            report?.Invoke("ERROR need to rebuild refcount structures");
            throw new BlockException(Errno.EIO, "Check failed: Input/output error");
        }

        if (mode == ImageCheckMode.Leaks || first.Corruptions == 0)
        {
            // Only leaks: each leaked cluster's refcount comes down to its references, one by one (no rebuild),
            // with the line qemu-img prints for each.
            for (long c = 0; c < counter.Refs.Length; c++)
            {
                ulong rc = await GetRefcountLockedAsync(c).ConfigureAwait(false);
                if (rc > counter.Refs[c])
                {
                    report?.Invoke($"Repairing cluster {c} refcount={rc} reference={counter.Refs[c]}");
                    await UpdateRefcountLockedAsync(c, -(long)(rc - counter.Refs[c])).ConfigureAwait(false);
                }
            }

            await WriteDirtyRefBlocksAsync().ConfigureAwait(false);
        }
        else
        {
            report?.Invoke("Rebuilding refcount structure");
            await RebuildRefcountsLockedAsync(counter, ct).ConfigureAwait(false);
            await FixCopiedFlagsLockedAsync().ConfigureAwait(false);
            await FlushTablesLockedAsync(ct).ConfigureAwait(false);
        }

        await _file.FlushAsync(ct).ConfigureAwait(false);
        var (second, _) = await ScanLockedAsync(null, ct).ConfigureAwait(false);
        second.LeaksFixed = Math.Max(0, first.Leaks - second.Leaks);
        second.CorruptionsFixed = Math.Max(0, first.Corruptions - second.Corruptions);
        return second;
    }

    private async ValueTask<ImageCheckResult> CheckLockedAsync(Action<string>? report, CancellationToken ct)
    {
        var (result, _) = await ScanLockedAsync(report, ct).ConfigureAwait(false);
        return result;
    }

    private async ValueTask<ulong[]> ReadRawTableAsync(long offset, int entries, CancellationToken ct)
    {
        var t = new ulong[entries];
        if (entries == 0)
            return t;
        byte[] b = new byte[entries * 8];
        await _file.ReadAsync(offset, b, ct).ConfigureAwait(false);
        for (int i = 0; i < entries; i++)
            t[i] = BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(i * 8));
        return t;
    }

    private async ValueTask<(ImageCheckResult, RefCounter)> ScanLockedAsync(Action<string>? report, CancellationToken ct)
    {
        var res = new ImageCheckResult();
        long fileClusters = (_file.Length + _clusterSize - 1) >> _clusterBits;
        // The recount holds a counter per cluster of the file; a file grown to an absurd length by damage
        // cannot be recounted in memory, which is a failed check, not a crash.
        if (fileClusters > MaxCheckedClusters)
            throw new BlockException(Errno.EFBIG, $"Image file of {_file.Length} bytes is too large to check ({fileClusters} clusters)");
        var rc = new RefCounter(fileClusters, _clusterBits, _file.Length, report);
        rc.Add(0, _clusterSize);
        rc.Add(_l1Offset, _l1.Length * 8L);
        long nextContiguous = 0;
        await WalkL1Async(_l1, rc, res, active: true, getNext: () => nextContiguous, setNext: v => nextContiguous = v, report, ct).ConfigureAwait(false);

        foreach (int i in _incompleteSnapshots)
        {
            report?.Invoke($"ERROR snapshot table entry {i} is incomplete");
            res.Corruptions++;
        }

        if (_snapshots.Count > 0)
        {
            long tableBytes = SnapshotTableBytes();
            rc.Add((long)_header.SnapshotsOffset, tableBytes);
            foreach (var s in _snapshots)
            {
                rc.Add(s.L1TableOffset, s.L1Size * 8L);
                if (s.L1TableOffset + (s.L1Size * 8L) > _file.Length)
                    continue;
                var l1 = await ReadRawTableAsync(s.L1TableOffset, s.L1Size, ct).ConfigureAwait(false);
                await WalkL1Async(l1, rc, res, active: false, getNext: () => 0, setNext: _ => { }, report, ct).ConfigureAwait(false);
            }
        }

        await CountBitmapClustersAsync((o, l) => rc.Add(o, l), ct).ConfigureAwait(false);
        rc.Add(_refTableOffset, (long)_refTable.Length * 8, refcountStructure: true);
        for (int i = 0; i < _refTable.Length; i++)
        {
            long off = (long)(_refTable[i] & Qcow2Layout.OffsetMask);
            if (off == 0)
                continue;
            if ((off & (_clusterSize - 1)) != 0)
            {
                report?.Invoke($"ERROR refcount block {i} is not cluster aligned; refcount table entry corrupted");
                res.Corruptions++;
                continue;
            }

            if (off >= _file.Length)
            {
                report?.Invoke($"ERROR refcount block {i} is outside image");
                res.Corruptions++;
                continue;
            }

            rc.Add(off, _clusterSize, refcountStructure: true);
        }

        res.Corruptions += rc.Corruptions;
        long highest = -1;
        long coverage = Math.Max(fileClusters, 0);
        for (long c = 0; c < coverage; c++)
        {
            ulong refcount = (c >> _refBlockBits) < _refTable.Length ? await SafeRefcountAsync(c).ConfigureAwait(false) : 0;
            ulong refs = rc.Refs[c];
            if (refcount > 0 || refs > 0)
                highest = c;
            if (refcount < refs)
            {
                report?.Invoke($"ERROR cluster {c} refcount={refcount} reference={refs}");
                res.Corruptions++;
                res.UnsafeCorruptions++;
            }
            else if (refcount > refs)
            {
                report?.Invoke($"Leaked cluster {c} refcount={refcount} reference={refs}");
                res.Leaks++;
            }
        }

        // OFLAG_COPIED must say "refcount is one" truthfully in the active tables.
        for (int i = 0; i < _l1.Length; i++)
        {
            long l2 = (long)(_l1[i] & Qcow2Layout.OffsetMask);
            if (l2 == 0 || (l2 & (_clusterSize - 1)) != 0 || (l2 >> _clusterBits) >= fileClusters)
                continue;
            ulong r = await SafeRefcountAsync(l2 >> _clusterBits).ConfigureAwait(false);
            bool copied = (_l1[i] & Qcow2Layout.OflagCopied) != 0;
            if ((r == 1) != copied)
            {
                report?.Invoke($"ERROR OFLAG_COPIED L2 cluster: l1_index={i} l1_entry={_l1[i]:x} refcount={r}");
                res.Corruptions++;
                if (copied && rc.Refs[l2 >> _clusterBits] > 1)
                    res.UnsafeCorruptions++;
            }

            var table = await LoadL2Async(l2, "L1 entry", _l1Offset + (i * 8L)).ConfigureAwait(false);
            for (int j = 0; j < L2Entries; j++)
            {
                var e = new Qcow2L2Entry(GetEntry(table.Data, j));
                var k = e.Kind(V3);
                if (k is not (Qcow2ClusterKind.Normal or Qcow2ClusterKind.ZeroAllocated))
                    continue;
                if ((e.HostOffset & (_clusterSize - 1)) != 0 || (e.HostOffset >> _clusterBits) >= fileClusters)
                    continue;
                ulong dr = await SafeRefcountAsync(e.HostOffset >> _clusterBits).ConfigureAwait(false);
                if ((dr == 1) != e.IsCopied)
                {
                    report?.Invoke($"ERROR OFLAG_COPIED data cluster: l2_entry={e.Raw:x} refcount={dr}");
                    res.Corruptions++;
                    if (e.IsCopied && rc.Refs[e.HostOffset >> _clusterBits] > 1)
                        res.UnsafeCorruptions++;
                }
            }
        }

        res.ImageEndOffset = (highest + 1) << _clusterBits;
        res.TotalClusters = (_size + _clusterSize - 1) >> _clusterBits;
        return (res, rc);
    }

    private async ValueTask<ulong> SafeRefcountAsync(long cluster)
    {
        try
        {
            return await GetRefcountLockedAsync(cluster).ConfigureAwait(false);
        }
        catch (ImageCorruptException)
        {
            return 0;
        }
    }

    private long SnapshotTableBytes()
    {
        long total = 0;
        foreach (var s in _snapshots)
        {
            long varLen = s.ExtraData.Length + System.Text.Encoding.UTF8.GetByteCount(s.Id) + System.Text.Encoding.UTF8.GetByteCount(s.Name);
            total += (Qcow2SnapshotHeader.Size + varLen + 7) & ~7L;
        }

        return total;
    }

    private async ValueTask WalkL1Async(ulong[] l1, RefCounter rc, ImageCheckResult res, bool active, Func<long> getNext, Action<long> setNext,
        Action<string>? report, CancellationToken ct)
    {
        long nextContiguous = getNext();
        for (int i = 0; i < l1.Length; i++)
        {
            if ((l1[i] & Qcow2Layout.L1ReservedMask) != 0)
            {
                report?.Invoke($"ERROR found L1 entry with reserved bits set: {l1[i]:x}");
                res.Corruptions++;
            }

            long l2 = (long)(l1[i] & Qcow2Layout.OffsetMask);
            if (l2 == 0)
                continue;
            if ((l2 & (_clusterSize - 1)) != 0)
            {
                report?.Invoke($"ERROR l2_offset={l2:x}: Table is not cluster aligned; L1 entry corrupted");
                res.Corruptions++;
                continue;
            }

            // A table cut by the end of the file reads as zeros past it, and what it still names is counted.
            rc.Add(l2, _clusterSize);
            // QEMU counts fragmentation within one L2 table: a jump between tables (where the next table
            // itself sits, with small clusters) is not a fragment.
            nextContiguous = 0;
            byte[] table;
            var cached = _l2Cache.TryGet(l2);
            if (cached != null)
            {
                table = cached.Data;
            }
            else
            {
                table = new byte[_clusterSize];
                await _file.ReadAsync(l2, table, ct).ConfigureAwait(false);
            }

            for (int j = 0; j < L2Entries; j++)
            {
                var e = new Qcow2L2Entry(GetEntry(table, j));
                var kind = e.Kind(V3);
                if (kind != Qcow2ClusterKind.Compressed && (e.Raw & Qcow2Layout.L2ReservedMask) != 0)
                {
                    report?.Invoke($"ERROR found l2 entry with reserved bits set: {e.Raw:x}");
                    res.Corruptions++;
                }

                switch (kind)
                {
                    case Qcow2ClusterKind.Compressed:
                        {
                            if (e.IsCopied)
                            {
                                report?.Invoke($"ERROR: coffset=0x{e.CompressedOffset(_clusterBits):x}: copied flag must never be set for compressed clusters");
                                res.Corruptions++;
                            }

                            long off = e.CompressedOffset(_clusterBits) & ~511L;
                            rc.Add(off, (long)e.CompressedSectors(_clusterBits) * 512);
                            if (active)
                            {
                                // Compressed clusters count as fragmented by nature, as QEMU counts them.
                                res.AllocatedClusters++;
                                res.CompressedClusters++;
                                res.FragmentedClusters++;
                            }

                            break;
                        }

                    case Qcow2ClusterKind.Normal:
                    case Qcow2ClusterKind.ZeroAllocated:
                        {
                            long off = e.HostOffset;
                            if ((off & (_clusterSize - 1)) != 0)
                            {
                                string what = kind == Qcow2ClusterKind.ZeroAllocated ? "Preallocated" : "Data";
                                report?.Invoke($"ERROR offset={off:x}: {what} cluster is not properly aligned; L2 entry corrupted.");
                                res.Corruptions++;
                                break;
                            }

                            rc.Add(off, _clusterSize);
                            if (active)
                            {
                                res.AllocatedClusters++;
                                if (nextContiguous != 0 && off != nextContiguous)
                                    res.FragmentedClusters++;
                                nextContiguous = off + _clusterSize;
                            }

                            break;
                        }
                }
            }
        }

        setNext(nextContiguous);
    }

    /// <summary>
    /// Writes a complete new refcount table and blocks past the end of the file from the recounted
    /// references, then switches the header to it: the old structures stay intact until the switch.
    /// With newOrder the new blocks use that entry width, and the same header write switches refcount_order.
    /// </summary>
    private async ValueTask RebuildRefcountsLockedAsync(RefCounter counter, CancellationToken ct, int? newOrder = null)
    {
        int order = newOrder ?? _refOrder;
        int blockBits = _clusterBits + 3 - order;
        long n = counter.Refs.Length;
        long rbEntries = 1L << blockBits;
        long entriesPerCluster = _clusterSize / 8;
        long blocks = 1;
        long tableClusters = 1;
        while (true)
        {
            long total = n + blocks + tableClusters;
            long b = (total + rbEntries - 1) / rbEntries;
            long t = ((b * 8) + _clusterSize - 1) / _clusterSize;
            if (b == blocks && t == tableClusters)
                break;
            blocks = b;
            tableClusters = t;
        }

        long tableEntries = tableClusters * entriesPerCluster;
        if (tableEntries * 8 > Qcow2Layout.MaxRefcountTableBytes)
            throw new BlockException(Errno.EFBIG, "qcow2: rebuilt refcount table would be too large");
        long blocksStart = n;
        long tableStart = n + blocks;
        long end = tableStart + tableClusters;
        ulong max = Qcow2Refcount.MaxValue(order);
        var table = new ulong[tableEntries];
        byte[] block = new byte[_clusterSize];
        for (long bi = 0; bi < blocks; bi++)
        {
            Array.Clear(block);
            long first = bi * rbEntries;
            for (long c = first; c < first + rbEntries && c < end; c++)
            {
                ulong v = c < n ? counter.Refs[c] - counter.RefcountStructures[c] : 1;
                Qcow2Refcount.Set(block, order, (int)(c - first), Math.Min(v, max));
            }

            long off = (blocksStart + bi) << _clusterBits;
            await _file.WriteAsync(off, block, RequestFlags.None, ct).ConfigureAwait(false);
            table[bi] = (ulong)off;
        }

        byte[] tb = new byte[tableClusters << _clusterBits];
        for (long i = 0; i < tableEntries; i++)
            BinaryPrimitives.WriteUInt64BigEndian(tb.AsSpan((int)(i * 8)), table[i]);
        await _file.WriteAsync(tableStart << _clusterBits, tb, RequestFlags.None, ct).ConfigureAwait(false);
        await _file.FlushAsync(ct).ConfigureAwait(false);
        var nh = _header with { RefcountTableOffset = (ulong)(tableStart << _clusterBits), RefcountTableClusters = (uint)tableClusters, RefcountOrder = (uint)order };
        if (order == _refOrder)
        {
            byte[] hdr = new byte[12];
            BinaryPrimitives.WriteUInt64BigEndian(hdr, nh.RefcountTableOffset);
            BinaryPrimitives.WriteUInt32BigEndian(hdr.AsSpan(8), nh.RefcountTableClusters);
            await _file.WriteAsync(Qcow2Header.RefcountTableOffsetOffset, hdr, RequestFlags.None, ct).ConfigureAwait(false);
        }
        else
        {
            // The table and the entry width describing it change together: one write of the fixed header
            // (only its first 104 bytes, so fields past them that we do not know stay as they are).
            byte[] hdr = new byte[nh.Size];
            nh.Write(hdr);
            await _file.WriteAsync(0, hdr.AsMemory(0, Qcow2Layout.V3HeaderSize), RequestFlags.None, ct).ConfigureAwait(false);
        }

        await _file.FlushAsync(ct).ConfigureAwait(false);
        _refCache.Clear();
        _refTable = table;
        _refTableOffset = tableStart << _clusterBits;
        _refOrder = order;
        _refBlockBits = blockBits;
        _header = nh;
        _pendingFrees.Clear();
        _pendingFreeReasons.Clear();
        _freeHint = 0;
    }

    /// <summary>After a rebuild the refcounts are right; make the copied flags of the active tables agree.</summary>
    private async ValueTask FixCopiedFlagsLockedAsync()
    {
        long fileClusters = (_file.Length + _clusterSize - 1) >> _clusterBits;
        for (int i = 0; i < _l1.Length; i++)
        {
            long l2 = (long)(_l1[i] & Qcow2Layout.OffsetMask);
            if (l2 == 0 || (l2 & (_clusterSize - 1)) != 0 || (l2 >> _clusterBits) >= fileClusters)
                continue;
            bool one = await SafeRefcountAsync(l2 >> _clusterBits).ConfigureAwait(false) == 1;
            ulong want = one ? _l1[i] | Qcow2Layout.OflagCopied : _l1[i] & ~Qcow2Layout.OflagCopied;
            if (want != _l1[i])
            {
                SetL1Entry(i, want);
                _l1Dirty = true;
            }

            var table = await LoadL2Async(l2, "L1 entry", _l1Offset + (i * 8L)).ConfigureAwait(false);
            for (int j = 0; j < L2Entries; j++)
            {
                var e = new Qcow2L2Entry(GetEntry(table.Data, j));
                if (e.Kind(V3) is not (Qcow2ClusterKind.Normal or Qcow2ClusterKind.ZeroAllocated))
                    continue;
                if ((e.HostOffset & (_clusterSize - 1)) != 0 || (e.HostOffset >> _clusterBits) >= fileClusters)
                    continue;
                bool dOne = await SafeRefcountAsync(e.HostOffset >> _clusterBits).ConfigureAwait(false) == 1;
                ulong w = dOne ? e.Raw | Qcow2Layout.OflagCopied : e.Raw & ~Qcow2Layout.OflagCopied;
                if (w != e.Raw)
                {
                    SetEntry(table.Data, j, w);
                    table.Dirty = true;
                }
            }
        }
    }
}
