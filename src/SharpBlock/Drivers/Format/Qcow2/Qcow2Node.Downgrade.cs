using SharpBlock.Errors;

namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>
/// `img amend -o compat=0.10`: turns a version 3 image into a version 2 one. Version 2 has no zero flag, so
/// every zero cluster, in the active tables and in every snapshot's, is first rewritten as something a
/// version 2 reader understands; only then does the header change, in one write.
/// </summary>
/// <remarks>
/// Ordering: each expanded cluster gets its refcount and its zeros on disk before the L2 entry that points
/// at it, exactly as a guest write would. Until the final header write the file is a valid version 3 image
/// whose zero clusters are partly expanded, which reads the same; a crash anywhere leaks at worst.
/// </remarks>
public sealed partial class Qcow2Node
{
    /// <summary>Caller holds _meta. Returns the version 2 header to write; the tables are already expanded.</summary>
    private async ValueTask<Qcow2Header> DowngradeLockedAsync(Qcow2Header h, CancellationToken ct)
    {
        if (h.RefcountOrder != 4)
            throw new BlockException(Errno.EOPNOTSUPP, "compat=0.10 requires refcount_bits=16");
        // Expanded zero clusters are written as guest data, so an encrypted image needs its key first.
        if (Encrypted)
            _ = Cipher;

        // Lazy refcounts lag only in the cache: the flush writes them, and then the bit may go.
        await FlushMetadataLockedAsync(ct).ConfigureAwait(false);
        await _file.FlushAsync(ct).ConfigureAwait(false);
        if (IsDirty)
            await SetDirtyBitAsync(false, ct).ConfigureAwait(false);

        ulong incompat = _header.IncompatibleFeatures & ~Qcow2Layout.IncompatCompression;
        if (incompat != 0)
            throw new BlockException(Errno.EOPNOTSUPP, $"Cannot downgrade an image with incompatible features 0x{incompat:x} set");
        if (h.CompressionType != 0)
            throw new BlockException(Errno.EOPNOTSUPP, "Cannot downgrade an image with a non-default compression type");

        await ExpandZeroClustersLockedAsync(_l1, ct).ConfigureAwait(false);
        foreach (var snap in _snapshots)
        {
            var l1 = await ReadRawTableAsync(snap.L1TableOffset, snap.L1Size, ct).ConfigureAwait(false);
            await ExpandZeroClustersLockedAsync(l1, ct).ConfigureAwait(false);
        }

        await FlushMetadataLockedAsync(ct).ConfigureAwait(false);
        await _file.FlushAsync(ct).ConfigureAwait(false);
        return h with
        {
            Version = 2,
            HeaderLength = Qcow2Layout.V2HeaderSize,
            IncompatibleFeatures = 0,
            CompatibleFeatures = 0,
            AutoclearFeatures = 0,
            RefcountOrder = 4,
            CompressionType = 0,
        };
    }

    /// <summary>
    /// Rewrites the zero clusters reachable from one L1 table. A plain zero cluster becomes unallocated when
    /// nothing lies below (it reads as zeros either way), else a fresh cluster of zeros, since unallocated
    /// would show the backing file. A preallocated zero cluster keeps its host cluster, filled with zeros.
    /// L2 tables are changed in place: a table shared with other L1 tables is meant to change for all of them.
    /// </summary>
    private long GuestOffsetOf(int l1Index, int l2Index) => (((long)l1Index * L2Entries) + l2Index) << _clusterBits;

    private async ValueTask ExpandZeroClustersLockedAsync(ulong[] l1, CancellationToken ct)
    {
        // A backing file named in the header counts even when not opened: unallocated would show it later.
        bool backing = Backing != null || _backingName != null;
        byte[] zeros = new byte[_clusterSize];
        for (int i = 0; i < l1.Length; i++)
        {
            long l2Offset = (long)(l1[i] & Qcow2Layout.OffsetMask);
            if (l2Offset == 0)
                continue;
            var table = await LoadL2Async(l2Offset, "L1 entry", i * 8L).ConfigureAwait(false);
            var changes = new List<(int Index, ulong Entry)>();
            ulong l2Refs = 0;
            for (int j = 0; j < L2Entries; j++)
            {
                var e = new Qcow2L2Entry(GetEntry(table.Data, j));
                switch (e.Kind(v3: true))
                {
                    case Qcow2ClusterKind.ZeroPlain:
                        if (!backing)
                        {
                            changes.Add((j, 0));
                            break;
                        }

                        if (l2Refs == 0)
                            l2Refs = await GetRefcountLockedAsync(l2Offset >> _clusterBits).ConfigureAwait(false);
                        long host = await AllocateClustersLockedAsync(1).ConfigureAwait(false);
                        // Every table sharing this L2 now refers to the new cluster.
                        if (l2Refs > 1)
                            await UpdateRefcountLockedAsync(host >> _clusterBits, (long)l2Refs - 1).ConfigureAwait(false);
                        // Through the cipher on encrypted images: raw zeros would decrypt to garbage.
                        await WriteDataAsync(host, GuestOffsetOf(i, j), zeros, ct).ConfigureAwait(false);
                        changes.Add((j, (ulong)host | (l2Refs <= 1 ? Qcow2Layout.OflagCopied : 0)));
                        break;
                    case Qcow2ClusterKind.ZeroAllocated:
                        await WriteDataAsync(e.HostOffset, GuestOffsetOf(i, j), zeros, ct).ConfigureAwait(false);
                        changes.Add((j, e.Raw & ~Qcow2Layout.OflagZero));
                        break;
                }
            }

            if (changes.Count == 0)
                continue;
            // The zeros (and the refcounts of new clusters) are durable before any entry points at them.
            await WriteDirtyRefBlocksAsync().ConfigureAwait(false);
            await _file.FlushAsync(ct).ConfigureAwait(false);
            table = await LoadL2Async(l2Offset, "L1 entry", i * 8L).ConfigureAwait(false);
            foreach (var (index, entry) in changes)
                SetEntry(table.Data, index, entry);
            table.Dirty = true;
        }
    }
}
