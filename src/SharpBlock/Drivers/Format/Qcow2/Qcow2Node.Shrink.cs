using SharpBlock.Errors;
using SharpBlock.Io;

namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>
/// Shrinking (`img resize --shrink`), as QEMU 7.2 does it: every cluster past the new end is dropped from the
/// active tables (snapshots keep theirs), the L1 table keeps its size with the dropped entries zeroed, and the
/// file is cut after the last cluster still in use.
/// </summary>
/// <remarks>
/// Ordering: every refcount is lowered only after the table that dropped the reference is on disk. The
/// tables wholly past the end go (and their clusters are freed) before the header's new size is written, the
/// tail of the last kept table after it; the file is cut last. A crash in between leaks clusters at worst and
/// loses nothing the smaller image still shows (the old size may remain, its dropped area unallocated).
/// </remarks>
public sealed partial class Qcow2Node
{
    /// <summary>Caller has drained the node.</summary>
    private async ValueTask ShrinkAsync(long size, CancellationToken ct)
    {
        if ((size & 511) != 0)
            throw new BlockException(Errno.EINVAL, "The new size must be a multiple of 512");
        await _meta.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            long keepClusters = (size + _clusterSize - 1) >> _clusterBits;
            long oldClusters = (_size + _clusterSize - 1) >> _clusterBits;
            long keepL1 = L1EntriesFor(size);

            // Tables wholly past the end go with everything they map.
            for (long i = keepL1; i < _l1.Length; i++)
            {
                long l2 = (long)(_l1[i] & Qcow2Layout.OffsetMask);
                if (l2 == 0)
                    continue;
                var table = await LoadL2Async(l2, "L1 entry", _l1Offset + (i * 8)).ConfigureAwait(false);
                for (int j = 0; j < L2Entries; j++)
                    ReleaseEntry(new Qcow2L2Entry(GetEntry(table.Data, j)), FreeReason.Request);
                bool shared = await GetRefcountLockedAsync(l2 >> _clusterBits).ConfigureAwait(false) > 1;
                // A table only we used may be handed out again; a stale cached copy must not be written over it.
                if (!shared)
                    _l2Cache.Remove(l2);
                QueueFree(l2, 1, FreeReason.Request);
                SetL1Entry(i, 0);
                _l1Dirty = true;
            }

            // Free those first, so a copy of the last table (below) can take a cluster low in the file.
            await FlushMetadataLockedAsync(ct).ConfigureAwait(false);

            // The last table kept loses its entries past the end (copied first if a snapshot shares it).
            long tailEnd = Math.Min(oldClusters, keepL1 << _l2Bits);
            if (keepClusters < tailEnd && (_l1[(keepClusters >> _l2Bits)] & Qcow2Layout.OffsetMask) != 0)
                await SetMappingLockedAsync(keepClusters, tailEnd - keepClusters, static _ => 0, FreeReason.Request).ConfigureAwait(false);

            await FlushTablesLockedAsync(ct).ConfigureAwait(false);
            await _file.FlushAsync(ct).ConfigureAwait(false);
            await WriteHeaderFieldAsync(Qcow2Header.SizeOffset, (ulong)size, ct).ConfigureAwait(false);
            await _file.FlushAsync(ct).ConfigureAwait(false);
            _header = _header with { Size64 = (ulong)size };
            Volatile.Write(ref _size, size);

            await FlushMetadataLockedAsync(ct).ConfigureAwait(false);
            await _file.FlushAsync(ct).ConfigureAwait(false);
            await CutFileTailLockedAsync(ct).ConfigureAwait(false);
        }
        finally
        {
            _meta.Release();
        }
    }

    /// <summary>Truncates the file after the last cluster with a non-zero refcount, when that frees anything.</summary>
    private async ValueTask CutFileTailLockedAsync(CancellationToken ct)
    {
        await DropEmptyRefBlocksLockedAsync(ct).ConfigureAwait(false);
        long fileClusters = (_file.Length + _clusterSize - 1) >> _clusterBits;
        long last = fileClusters - 1;
        while (last > 0)
        {
            long ti = last >> _refBlockBits;
            if (ti >= _refTable.Length || (_refTable[ti] & Qcow2Layout.OffsetMask) == 0)
            {
                // No block describes this range, so nothing in it is in use.
                last = (ti << _refBlockBits) - 1;
                continue;
            }

            if (await GetRefcountLockedAsync(last).ConfigureAwait(false) != 0)
                break;
            last--;
        }

        long end = (last + 1) << _clusterBits;
        if (end < _file.Length)
        {
            await _file.TruncateAsync(end, ct).ConfigureAwait(false);
            if (_freeHint > last + 1)
                _freeHint = last + 1;
        }
    }

    /// <summary>
    /// Unhooks refcount blocks that count nothing but themselves (often the last clusters of the file once
    /// its tail is free), as QEMU does when shrinking: the table entry is cleared and made durable first, then
    /// the block's own cluster is released, so a crash in between only leaks it.
    /// </summary>
    private async ValueTask DropEmptyRefBlocksLockedAsync(CancellationToken ct)
    {
        for (long ti = _refTable.Length - 1; ti > 0; ti--)
        {
            long off = (long)(_refTable[ti] & Qcow2Layout.OffsetMask);
            if (off == 0)
                continue;
            var block = await LoadRefBlockAsync(ti).ConfigureAwait(false);
            if (block == null)
                continue;
            long self = off >> _clusterBits;
            int selfIndex = (self >> _refBlockBits) == ti ? (int)(self & (RefBlockEntries - 1)) : -1;
            bool empty = true;
            for (int i = 0; i < RefBlockEntries && empty; i++)
            {
                if (i != selfIndex && Qcow2Refcount.Get(block.Data, _refOrder, i) != 0)
                    empty = false;
            }

            if (!empty)
                continue;
            SetRefTableEntry(ti, 0);
            _refCache.Remove(off);
            Debug(Schema.BlkdebugEvent.ReftableUpdate);
            await _file.WriteAsync(_refTableOffset + (ti * 8), new byte[8], RequestFlags.None, ct).ConfigureAwait(false);
            await _file.FlushAsync(ct).ConfigureAwait(false);
            // A block inside its own range simply stops existing; one counted elsewhere gives its cluster back.
            if (selfIndex < 0)
                await UpdateRefcountLockedAsync(self, -1).ConfigureAwait(false);
        }

        await WriteDirtyRefBlocksAsync().ConfigureAwait(false);
        await _file.FlushAsync(ct).ConfigureAwait(false);
    }
}
