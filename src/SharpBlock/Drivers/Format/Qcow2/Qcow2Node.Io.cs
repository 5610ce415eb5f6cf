using System.Buffers;
using SharpBlock.Errors;
using SharpBlock.Io;

namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>The guest request path: lookups under the metadata lock, data I/O outside it.</summary>
public sealed partial class Qcow2Node
{
    private async ValueTask<Mapping> LookupAsync(long offset, long length, CancellationToken ct)
    {
        await _meta.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            return await LookupLockedAsync(offset, length).ConfigureAwait(false);
        }
        finally
        {
            _meta.Release();
        }
    }

    protected override async ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        RequireKey();
        while (buffer.Length > 0)
        {
            var m = await LookupAsync(offset, buffer.Length, cancellationToken).ConfigureAwait(false);
            long inCluster = offset & (_clusterSize - 1);
            int n = (int)Math.Min(buffer.Length, ((long)m.Clusters << _clusterBits) - inCluster);
            var chunk = buffer[..n];
            switch (m.Kind)
            {
                case Qcow2ClusterKind.Unallocated:
                    await ReadBackingAsync(offset, chunk, cancellationToken).ConfigureAwait(false);
                    // The backing node may be written while we read it: image fleecing's source gets guest writes,
                    // each preceded by a copy of the old data into this image. If such a copy landed here since the
                    // lookup, the backing bytes just read may already be the new ones, so the range is read again
                    // through the new mapping. Still unallocated means no copy finished, so the backing still held
                    // the old data for the whole read.
                    if (Backing != null)
                    {
                        var again = await LookupAsync(offset, n, cancellationToken).ConfigureAwait(false);
                        if (again.Kind != Qcow2ClusterKind.Unallocated || ((long)again.Clusters << _clusterBits) - inCluster < n)
                            continue;
                    }

                    break;
                case Qcow2ClusterKind.ZeroPlain:
                case Qcow2ClusterKind.ZeroAllocated:
                    chunk.Span.Clear();
                    break;
                case Qcow2ClusterKind.Normal:
                    Debug(Schema.BlkdebugEvent.ReadAio);
                    await ReadDataAsync(m.Entry.HostOffset + inCluster, offset, chunk, cancellationToken).ConfigureAwait(false);
                    break;
                case Qcow2ClusterKind.Compressed:
                    {
                        byte[] cluster = ArrayPool<byte>.Shared.Rent(_clusterSize);
                        try
                        {
                            await ReadCompressedAsync(m.Entry, cluster, cancellationToken).ConfigureAwait(false);
                            cluster.AsSpan((int)inCluster, n).CopyTo(chunk.Span);
                        }
                        finally
                        {
                            ArrayPool<byte>.Shared.Return(cluster);
                        }

                        break;
                    }
            }

            offset += n;
            buffer = buffer[n..];
        }
    }

    /// <summary>Reads from the backing image; past its end (or with none) the image reads as zeros.</summary>
    private async ValueTask ReadBackingAsync(long offset, Memory<byte> chunk, CancellationToken ct)
    {
        var backing = Backing;
        long avail = backing == null ? 0 : Math.Max(0, backing.Length - offset);
        int inBacking = (int)Math.Min(avail, chunk.Length);
        if (inBacking > 0)
        {
            Debug(Schema.BlkdebugEvent.ReadBackingAio);
            await backing!.ReadAsync(offset, chunk[..inBacking], ct).ConfigureAwait(false);
        }
        chunk.Span[inBacking..].Clear();
    }

    private async ValueTask ReadCompressedAsync(Qcow2L2Entry e, byte[] cluster, CancellationToken ct)
    {
        long off = e.CompressedOffset(_clusterBits);
        int len = (int)(((long)e.CompressedSectors(_clusterBits) * 512) - (off & 511));
        if (off + len > _file.Length)
            len = (int)Math.Max(0, _file.Length - off);
        byte[] comp = ArrayPool<byte>.Shared.Rent(Math.Max(len, 1));
        try
        {
            Debug(Schema.BlkdebugEvent.ReadCompressed);
            await _file.ReadAsync(off, comp.AsMemory(0, len), ct).ConfigureAwait(false);
            if (!Qcow2Compression.Decompress(comp, len, cluster.AsSpan(0, _clusterSize)))
                throw new BlockException(Errno.EIO, $"qcow2: compressed cluster at 0x{off:x} in '{FileName}' does not decompress");
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(comp);
        }
    }

    /// <summary>Fills buf with the current content of one guest cluster (for copy-on-write).</summary>
    private async ValueTask ReadOldClusterAsync(Mapping m, long runFirst, long guestCluster, Memory<byte> buf, CancellationToken ct)
    {
        switch (m.Kind)
        {
            case Qcow2ClusterKind.Unallocated:
                await ReadBackingAsync(guestCluster << _clusterBits, buf, ct).ConfigureAwait(false);
                break;
            case Qcow2ClusterKind.Normal:
                await ReadDataAsync(m.Entry.HostOffset + ((guestCluster - runFirst) << _clusterBits), guestCluster << _clusterBits, buf, ct).ConfigureAwait(false);
                break;
            case Qcow2ClusterKind.Compressed:
                {
                    byte[] c = ArrayPool<byte>.Shared.Rent(_clusterSize);
                    try
                    {
                        await ReadCompressedAsync(m.Entry, c, ct).ConfigureAwait(false);
                        c.AsSpan(0, buf.Length).CopyTo(buf.Span);
                    }
                    finally
                    {
                        ArrayPool<byte>.Shared.Return(c);
                    }

                    break;
                }

            default:
                buf.Span.Clear();
                break;
        }
    }

    private ValueTask<RangeLock.Releaser> LockClustersAsync(long offset, long length) =>
        _ranges.AcquireAsync(offset >> _clusterBits, (offset + length + _clusterSize - 1) >> _clusterBits);

    private async ValueTask MarkDirtyForLazyRefcountsAsync(CancellationToken ct)
    {
        if (!UseLazyRefcounts || _headerDirtyBitSet)
            return;
        await _meta.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (!_headerDirtyBitSet)
                await SetDirtyBitAsync(true, ct).ConfigureAwait(false);
        }
        finally
        {
            _meta.Release();
        }
    }

    protected override async ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags, CancellationToken cancellationToken)
    {
        RequireKey();
        RefuseWritesIfCorrupt();
        await MarkDirtyForLazyRefcountsAsync(cancellationToken).ConfigureAwait(false);
        using (await LockClustersAsync(offset, data.Length).ConfigureAwait(false))
        {
            while (data.Length > 0)
            {
                var (m, host) = await LookupForWriteAsync(offset, data.Length, cancellationToken).ConfigureAwait(false);
                long inCluster = offset & (_clusterSize - 1);
                int n = (int)Math.Min(data.Length, ((long)m.Clusters << _clusterBits) - inCluster);
                if (host < 0)
                {
                    Debug(Schema.BlkdebugEvent.WriteAio);
                    await WriteDataAsync(m.Entry.HostOffset + inCluster, offset, data[..n], cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    await AllocatingWriteAsync(offset, data[..n], m, host, cancellationToken).ConfigureAwait(false);
                }
                offset += n;
                data = data[n..];
            }
        }

        if ((flags & RequestFlags.Fua) != 0)
            await FlushCoreAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The mapping a write starts in and, when it must go to fresh clusters, their host offset (else -1):
    /// lookup and allocation under one hold of the metadata lock, since every allocating write needs both.
    /// </summary>
    private async ValueTask<(Mapping Mapping, long Host)> LookupForWriteAsync(long offset, long length, CancellationToken ct)
    {
        await _meta.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var m = await LookupLockedAsync(offset, length).ConfigureAwait(false);
            long inCluster = offset & (_clusterSize - 1);
            long n = Math.Min(length, ((long)m.Clusters << _clusterBits) - inCluster);
            if (m.Kind == Qcow2ClusterKind.Normal && m.Entry.IsCopied)
            {
                // An L2 entry pointing at a table (a lie the refcounts may not show) must not let data over it.
                await PreWriteCheckAsync(Qcow2MetadataKinds.None, m.Entry.HostOffset + inCluster, n).ConfigureAwait(false);
                // Every cluster we allocate lies inside the file once its data is written; one past the end is
                // a damaged entry, and writing it would grow the file to wherever that entry points.
                if (m.Entry.HostOffset >= _file.Length)
                    throw await SignalCorruptionAsync(true, m.Entry.HostOffset, n, $"Data cluster offset 0x{m.Entry.HostOffset:x} lies past the end of the image file (guest offset: 0x{offset:x})").ConfigureAwait(false);
                return (m, -1);
            }

            long count = ((offset + n - 1) >> _clusterBits) - (offset >> _clusterBits) + 1;
            return (m, await AllocateClustersLockedAsync(count).ConfigureAwait(false));
        }
        finally
        {
            _meta.Release();
        }
    }

    /// <summary>
    /// Writes into the fresh clusters at host: data with the old content of partial clusters around it (outside
    /// the lock), then the L2 entries pointing at them (under it). Readers keep seeing the old mapping, with
    /// complete data, until the switch.
    /// </summary>
    private async ValueTask AllocatingWriteAsync(long offset, ReadOnlyMemory<byte> data, Mapping m, long host, CancellationToken ct)
    {
        long firstCluster = offset >> _clusterBits;
        long lastCluster = (offset + data.Length - 1) >> _clusterBits;
        long count = lastCluster - firstCluster + 1;
        long inCluster = offset & (_clusterSize - 1);
        long tail = ((offset + data.Length) & (_clusterSize - 1)) == 0 ? 0 : _clusterSize - ((offset + data.Length) & (_clusterSize - 1));
        if (inCluster == 0 && tail == 0)
        {
            Debug(Schema.BlkdebugEvent.WriteAio);
            await WriteDataAsync(host, offset, data, ct).ConfigureAwait(false);
        }
        else if (await TryZeroCowAsync(offset, data.Length, m, host, count, ct).ConfigureAwait(false))
        {
            Debug(Schema.BlkdebugEvent.WriteAio);
            await _file.WriteAsync(host + inCluster, data, RequestFlags.None, ct).ConfigureAwait(false);
        }
        else
        {
            int total = (int)(count << _clusterBits);
            byte[] buf = ArrayPool<byte>.Shared.Rent(total);
            try
            {
                var whole = buf.AsMemory(0, total);
                Debug(Schema.BlkdebugEvent.CowRead);
                if (inCluster != 0)
                    await ReadOldClusterAsync(m, firstCluster, firstCluster, whole[.._clusterSize], ct).ConfigureAwait(false);
                if (tail != 0 && (lastCluster != firstCluster || inCluster == 0))
                    await ReadOldClusterAsync(m, firstCluster, lastCluster, whole[(total - _clusterSize)..], ct).ConfigureAwait(false);

                data.CopyTo(whole[(int)inCluster..]);
                // QEMU writes the guest's bytes and the copied ends separately; here they go out as one request.
                Debug(Schema.BlkdebugEvent.CowWrite);
                await WriteDataAsync(host, firstCluster << _clusterBits, whole, ct).ConfigureAwait(false);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buf);
            }
        }

        await _meta.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await SetMappingLockedAsync(firstCluster, count, i => (ulong)(host + (i << _clusterBits)) | Qcow2Layout.OflagCopied, FreeReason.Other).ConfigureAwait(false);
        }
        finally
        {
            _meta.Release();
        }
    }

    /// <summary>Set once the file has refused a fast zero-range; the copy-on-write then always writes zeros.</summary>
    private volatile bool _noZeroCow;

    /// <summary>
    /// When what surrounds a partial write reads as zeros (no backing data under it, or a zero cluster), the
    /// fresh clusters are zeroed by the file in one cheap request and only the guest's bytes are written:
    /// a 4 KiB write into a new 64 KiB cluster then costs 4 KiB of data instead of 64. False when the old
    /// content must be copied. An encrypted image must never come here: its zeros are not zero bytes on disk.
    /// </summary>
    private async ValueTask<bool> TryZeroCowAsync(long offset, int length, Mapping m, long host, long count, CancellationToken ct)
    {
        // On an encrypted image zeros on disk decrypt to noise: the fill must go through the cipher.
        if (_noZeroCow || Encrypted)
            return false;
        bool zeros = m.Kind is Qcow2ClusterKind.ZeroPlain or Qcow2ClusterKind.ZeroAllocated
            || (m.Kind == Qcow2ClusterKind.Unallocated && (Backing == null || Backing.Length <= (offset & ~((long)_clusterSize - 1))));
        if (!zeros)
            return false;
        try
        {
            await _file.WriteZeroesAsync(host, count << _clusterBits, RequestFlags.NoFallback, ct).ConfigureAwait(false);
            return true;
        }
        catch (BlockException ex) when (ex.Errno == Errno.EOPNOTSUPP)
        {
            _noZeroCow = true;
            return false;
        }
    }

    /// <summary>Points count guest clusters at new entries, releasing what the old entries owned.</summary>
    private async ValueTask SetMappingLockedAsync(long firstCluster, long count, Func<long, ulong> entryFor, FreeReason reason)
    {
        long i = 0;
        while (i < count)
        {
            long ci = firstCluster + i;
            long l1i = ci >> _l2Bits;
            if (l1i >= _l1.Length)
                throw new BlockException(Errno.EINVAL, "qcow2: write beyond the L1 table");
            var l2 = await GetWritableL2Async(l1i).ConfigureAwait(false);
            int l2i = (int)(ci & (L2Entries - 1));
            while (i < count && l2i < L2Entries)
            {
                var old = new Qcow2L2Entry(GetEntry(l2.Data, l2i));
                ulong ne = entryFor(i);
                if (old.Raw != ne)
                {
                    var oldKind = old.Kind(V3);
                    bool sameHost = (oldKind is Qcow2ClusterKind.Normal or Qcow2ClusterKind.ZeroAllocated)
                        && (ne & Qcow2Layout.OflagCompressed) == 0 && (long)(ne & Qcow2Layout.OffsetMask) == old.HostOffset;
                    if (!sameHost)
                        ReleaseEntry(old, reason);
                    SetEntry(l2.Data, l2i, ne);
                }

                i++;
                l2i++;
            }

            l2.Dirty = true;
        }
    }

    protected override async ValueTask WriteZeroesCoreAsync(long offset, long length, RequestFlags flags, CancellationToken cancellationToken)
    {
        RequireKey();
        RefuseWritesIfCorrupt();
        long end = offset + length;
        long alignedStart = (offset + _clusterSize - 1) & ~((long)_clusterSize - 1);
        long alignedEnd = end == _size ? ((end + _clusterSize - 1) & ~((long)_clusterSize - 1)) : end & ~((long)_clusterSize - 1);
        if (!V3 || alignedStart >= alignedEnd)
        {
            if (!V3 && Backing == null && await RangeUnallocatedAsync(offset, length, cancellationToken).ConfigureAwait(false))
                return;
            if ((flags & RequestFlags.NoFallback) != 0 && !V3)
                throw new BlockException(Errno.EOPNOTSUPP, "qcow2: fast zeroing needs compat=1.1");
            await base.WriteZeroesCoreAsync(offset, length, flags & ~RequestFlags.NoFallback, cancellationToken).ConfigureAwait(false);
            return;
        }

        if (offset < alignedStart)
            await base.WriteZeroesCoreAsync(offset, alignedStart - offset, RequestFlags.None, cancellationToken).ConfigureAwait(false);
        await MarkDirtyForLazyRefcountsAsync(cancellationToken).ConfigureAwait(false);
        using (await LockClustersAsync(alignedStart, alignedEnd - alignedStart).ConfigureAwait(false))
        {
            await _meta.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                bool unmap = (flags & RequestFlags.MayUnmap) != 0;
                long first = alignedStart >> _clusterBits;
                long count = (alignedEnd - alignedStart) >> _clusterBits;
                for (long i = 0; i < count;)
                {
                    var m = await LookupLockedAsync((first + i) << _clusterBits, (count - i) << _clusterBits).ConfigureAwait(false);
                    long run = Math.Min(m.Clusters, count - i);
                    if (m.Kind == Qcow2ClusterKind.ZeroPlain || (m.Kind == Qcow2ClusterKind.ZeroAllocated && !unmap))
                    {
                        i += run;
                        continue;
                    }

                    var keep = m.Kind == Qcow2ClusterKind.Normal && m.Entry.IsCopied && !unmap;
                    long host = m.Entry.HostOffset;
                    await SetMappingLockedAsync(first + i, run,
                        j => keep ? (ulong)(host + ((j) << _clusterBits)) | Qcow2Layout.OflagCopied | Qcow2Layout.OflagZero : Qcow2Layout.OflagZero,
                        FreeReason.Request).ConfigureAwait(false);
                    i += run;
                }
            }
            finally
            {
                _meta.Release();
            }
        }

        if (alignedEnd < end)
            await base.WriteZeroesCoreAsync(alignedEnd, end - alignedEnd, RequestFlags.None, cancellationToken).ConfigureAwait(false);
        if ((flags & RequestFlags.Fua) != 0)
            await FlushCoreAsync(cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask<bool> RangeUnallocatedAsync(long offset, long length, CancellationToken ct)
    {
        long end = offset + length;
        while (offset < end)
        {
            var m = await LookupAsync(offset, end - offset, ct).ConfigureAwait(false);
            if (m.Kind != Qcow2ClusterKind.Unallocated)
                return false;
            offset = ((offset >> _clusterBits) + m.Clusters) << _clusterBits;
        }

        return true;
    }

    protected override async ValueTask DiscardCoreAsync(long offset, long length, CancellationToken cancellationToken)
    {
        RefuseWritesIfCorrupt();
        long end = Math.Min(offset + length, _size);
        long alignedStart = (offset + _clusterSize - 1) & ~((long)_clusterSize - 1);
        long alignedEnd = end == _size ? ((end + _clusterSize - 1) & ~((long)_clusterSize - 1)) : end & ~((long)_clusterSize - 1);
        if (alignedStart >= alignedEnd)
            return;
        using (await LockClustersAsync(alignedStart, alignedEnd - alignedStart).ConfigureAwait(false))
        {
            await _meta.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                long first = alignedStart >> _clusterBits;
                long count = (alignedEnd - alignedStart) >> _clusterBits;
                bool backing = Backing != null;
                for (long i = 0; i < count;)
                {
                    var m = await LookupLockedAsync((first + i) << _clusterBits, (count - i) << _clusterBits).ConfigureAwait(false);
                    long run = Math.Min(m.Clusters, count - i);
                    if (m.Kind == Qcow2ClusterKind.Unallocated || m.Kind == Qcow2ClusterKind.ZeroPlain)
                    {
                        i += run;
                        continue;
                    }

                    // A discarded cluster must not expose the backing file's data where the guest had written.
                    ulong ne = V3 && (backing || m.Kind != Qcow2ClusterKind.Unallocated) ? Qcow2Layout.OflagZero : 0;
                    await SetMappingLockedAsync(first + i, run, _ => ne, FreeReason.Request).ConfigureAwait(false);
                    i += run;
                }
            }
            finally
            {
                _meta.Release();
            }
        }
    }

    protected override async ValueTask<BlockStatus> BlockStatusCoreAsync(long offset, long length, CancellationToken cancellationToken)
    {
        var m = await LookupAsync(offset, length, cancellationToken).ConfigureAwait(false);
        long inCluster = offset & (_clusterSize - 1);
        long n = Math.Min(length, ((long)m.Clusters << _clusterBits) - inCluster);
        if (m.Kind == Qcow2ClusterKind.Normal && Encrypted)
        {
            // The file cannot say anything about encrypted data (a hole decrypts to noise), and a host offset
            // of ciphertext is no use to a reader, so QEMU reports neither.
            return new BlockStatus(BlockStatusFlags.Data | BlockStatusFlags.Allocated, n);
        }

        if (m.Kind == Qcow2ClusterKind.Normal)
        {
            // Like QEMU, ask the file too: a preallocated cluster that is still a hole there reads as zeros.
            long host = m.Entry.HostOffset + inCluster;
            var flags = BlockStatusFlags.Data | BlockStatusFlags.Allocated | BlockStatusFlags.OffsetValid;
            if (host >= _file.Length)
            {
                flags |= BlockStatusFlags.Zero;
            }
            else
            {
                var fst = await _file.GetBlockStatusAsync(host, Math.Min(n, _file.Length - host), cancellationToken).ConfigureAwait(false);
                if (fst.IsZero)
                    flags |= BlockStatusFlags.Zero;
                n = Math.Min(n, fst.Length);
            }

            return new BlockStatus(flags, n, host, _file);
        }

        return m.Kind switch
        {
            Qcow2ClusterKind.ZeroAllocated when Encrypted => new BlockStatus(BlockStatusFlags.Zero | BlockStatusFlags.Allocated, n),
            Qcow2ClusterKind.ZeroAllocated => new BlockStatus(BlockStatusFlags.Zero | BlockStatusFlags.Allocated | BlockStatusFlags.OffsetValid,
                n, m.Entry.HostOffset + inCluster, _file),
            Qcow2ClusterKind.ZeroPlain => new BlockStatus(BlockStatusFlags.Zero | BlockStatusFlags.Allocated, n),
            Qcow2ClusterKind.Compressed => new BlockStatus(BlockStatusFlags.Data | BlockStatusFlags.Allocated, n),
            _ => new BlockStatus(Backing == null ? BlockStatusFlags.Zero : BlockStatusFlags.None, n),
        };
    }

    /// <summary>
    /// Writes one whole guest cluster compressed (what convert -c does). The cluster must be unallocated;
    /// data that does not shrink is written as a normal cluster.
    /// </summary>
    public async ValueTask WriteCompressedAsync(long offset, ReadOnlyMemory<byte> cluster, CancellationToken cancellationToken = default)
    {
        RefuseCompressedIfEncrypted();
        byte[] output = ArrayPool<byte>.Shared.Rent(_clusterSize);
        try
        {
            int clen = CompressCluster(cluster.Span, output);
            await WriteCompressedAsync(offset, cluster, output.AsMemory(0, Math.Max(clen, 0)), cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(output);
        }
    }

    /// <summary>
    /// Deflates one guest cluster (a shorter last cluster is padded with zeros) into output, which holds at
    /// least ClusterSize bytes; returns the length, or -1 when storing it compressed would save nothing.
    /// Touches no image state, so callers such as convert compress clusters in parallel and write in order.
    /// </summary>
    public int CompressCluster(ReadOnlySpan<byte> cluster, Span<byte> output)
    {
        RefuseCompressedIfEncrypted();
        if (cluster.Length > _clusterSize || output.Length < _clusterSize)
            throw new BlockException(Errno.EINVAL, "qcow2: a compressed write takes at most one cluster");
        int clen;
        if (cluster.Length == _clusterSize)
        {
            clen = Qcow2Compression.Compress(cluster, output[..(_clusterSize - 1)]);
        }
        else
        {
            byte[] input = ArrayPool<byte>.Shared.Rent(_clusterSize);
            try
            {
                cluster.CopyTo(input);
                input.AsSpan(cluster.Length, _clusterSize - cluster.Length).Clear();
                clen = Qcow2Compression.Compress(input.AsSpan(0, _clusterSize), output[..(_clusterSize - 1)]);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(input);
            }
        }

        // A compressed cluster is addressed in 512-byte sectors; one that saves less than a sector costs more
        // to read than it saves.
        return clen < 0 || clen >= _clusterSize - 512 ? -1 : clen;
    }

    /// <summary>
    /// Stores one whole guest cluster as compressed (from <see cref="CompressCluster"/>); an empty compressed
    /// buffer means it did not shrink and the cluster is written as a normal one.
    /// </summary>
    public async ValueTask WriteCompressedAsync(long offset, ReadOnlyMemory<byte> cluster, ReadOnlyMemory<byte> compressed, CancellationToken cancellationToken = default)
    {
        if (ReadOnly)
            throw new BlockException(Errno.EPERM, $"Node '{NodeName}' is read-only");
        RefuseCompressedIfEncrypted();
        RefuseWritesIfCorrupt();
        if ((offset & (_clusterSize - 1)) != 0 || (cluster.Length != _clusterSize && offset + cluster.Length != _size) || offset >= _size)
            throw new BlockException(Errno.EINVAL, "qcow2: compressed writes must cover one whole cluster");
        if (compressed.IsEmpty)
        {
            await WriteAsync(offset, cluster, RequestFlags.None, cancellationToken).ConfigureAwait(false);
            return;
        }

        int clen = compressed.Length;
        using (await LockClustersAsync(offset, _clusterSize).ConfigureAwait(false))
        {
            long host;
            await _meta.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                var m = await LookupLockedAsync(offset, _clusterSize).ConfigureAwait(false);
                if (m.Kind != Qcow2ClusterKind.Unallocated && m.Kind != Qcow2ClusterKind.ZeroPlain)
                    throw new BlockException(Errno.EINVAL, "qcow2: compressed writes need an unallocated cluster");
                // A missing L2 table is allocated first, so that it does not land between two pieces of packed
                // compressed data and cut the run.
                long l1i = offset >> _clusterBits >> _l2Bits;
                if (l1i < _l1.Length)
                    await GetWritableL2Async(l1i).ConfigureAwait(false);
                host = await AllocateBytesLockedAsync(clen).ConfigureAwait(false);
                await PreWriteCheckAsync(Qcow2MetadataKinds.None, host, clen).ConfigureAwait(false);
            }
            finally
            {
                _meta.Release();
            }

            Debug(Schema.BlkdebugEvent.WriteCompressed);
            await _file.WriteAsync(host, compressed, RequestFlags.None, cancellationToken).ConfigureAwait(false);
            await _meta.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                Debug(Schema.BlkdebugEvent.L2UpdateCompressed);
                ulong e = Qcow2L2Entry.MakeCompressed(host, clen, _clusterBits).Raw;
                await SetMappingLockedAsync(offset >> _clusterBits, 1, _ => e, FreeReason.Other).ConfigureAwait(false);
            }
            finally
            {
                _meta.Release();
            }
        }
    }

    /// <summary>
    /// Packs compressed data into host clusters byte by byte: the next piece goes right after the previous
    /// one, running on into the following host cluster when that one is the next free cluster (as qemu-img
    /// packs them), else it starts fresh clusters. Each host cluster holds one reference per compressed
    /// cluster touching it, which is what a check recounts.
    /// </summary>
    private async ValueTask<long> AllocateBytesLockedAsync(int length)
    {
        Debug(Schema.BlkdebugEvent.ClusterAllocBytes);
        long cur = _compressedCursor;
        bool shareable = cur != 0 && (cur & (_clusterSize - 1)) != 0 && Qcow2Refcount.MaxValue(_refOrder) > 1
            && await GetRefcountLockedAsync(cur >> _clusterBits).ConfigureAwait(false) < Qcow2Refcount.MaxValue(_refOrder);
        long room = _clusterSize - (cur & (_clusterSize - 1));
        if (shareable && length <= room)
        {
            await UpdateRefcountLockedAsync(cur >> _clusterBits, 1).ConfigureAwait(false);
            _compressedCursor = cur + length;
            return cur;
        }

        long clusters = (length + _clusterSize - 1) >> _clusterBits;
        long host = await AllocateClustersLockedAsync(clusters).ConfigureAwait(false);
        if (shareable && host == (cur & ~((long)_clusterSize - 1)) + _clusterSize && length - room <= clusters << _clusterBits)
        {
            // The fresh cluster continues the partly used one: start in the gap at its end. Any fresh
            // cluster the piece no longer reaches goes back at once (nothing points at it yet).
            await UpdateRefcountLockedAsync(cur >> _clusterBits, 1).ConfigureAwait(false);
            long end = cur + length;
            long lastUsed = (end - 1) >> _clusterBits;
            for (long c = lastUsed + 1; c < (host >> _clusterBits) + clusters; c++)
                await UpdateRefcountLockedAsync(c, -1).ConfigureAwait(false);
            _compressedCursor = end;
            return cur;
        }

        _compressedCursor = host + length;
        return host;
    }

    protected override async ValueTask TruncateCoreAsync(long size, CancellationToken cancellationToken)
    {
        RefuseWritesIfCorrupt();
        if (size < _size)
        {
            await ShrinkAsync(size, cancellationToken).ConfigureAwait(false);
            return;
        }

        // A backing file longer than the old size would show through the new area (after a shrink, its old
        // data): as QEMU does, the new area reads as zeros, which needs zero clusters (version 3).
        long oldSize = _size;
        long backingEnd = Backing is { } b ? b.Length : 0;
        bool zeroNew = backingEnd > oldSize && size > oldSize;
        if (zeroNew && !V3)
            throw new BlockException(Errno.EOPNOTSUPP, "Failed to zero out new clusters: qcow2 zero clusters need compat=1.1");
        long alignedOld = (oldSize + _clusterSize - 1) & ~((long)_clusterSize - 1);
        await _meta.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            long needed = L1EntriesFor(size);
            if (needed > _l1.Length)
                await GrowL1LockedAsync(needed, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _meta.Release();
        }

        if (zeroNew && alignedOld > oldSize)
            await base.WriteZeroesCoreAsync(oldSize, Math.Min(alignedOld, size) - oldSize, RequestFlags.None, cancellationToken).ConfigureAwait(false);

        await _meta.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // Beyond the backing file's end an unallocated cluster reads as zeros already.
            long zeroEnd = Math.Min((size + _clusterSize - 1) & ~((long)_clusterSize - 1), (backingEnd + _clusterSize - 1) & ~((long)_clusterSize - 1));
            if (zeroNew && zeroEnd > alignedOld)
            {
                await SetMappingLockedAsync(alignedOld >> _clusterBits, (zeroEnd - alignedOld) >> _clusterBits, static _ => Qcow2Layout.OflagZero, FreeReason.Other).ConfigureAwait(false);
                // The zero clusters are durable before the size that exposes them.
                await FlushMetadataLockedAsync(cancellationToken).ConfigureAwait(false);
                await _file.FlushAsync(cancellationToken).ConfigureAwait(false);
            }

            await WriteHeaderFieldAsync(Qcow2Header.SizeOffset, (ulong)size, cancellationToken).ConfigureAwait(false);
            await _file.FlushAsync(cancellationToken).ConfigureAwait(false);
            _header = _header with { Size64 = (ulong)size };
            Volatile.Write(ref _size, size);
        }
        finally
        {
            _meta.Release();
        }
    }

    /// <summary>
    /// Moves the L1 table to a bigger copy: written and flushed in full before the header switches to it,
    /// the old table freed after, so a crash leaves one valid table either way.
    /// </summary>
    private async ValueTask GrowL1LockedAsync(long needed, CancellationToken ct)
    {
        if (needed * 8 > Qcow2Layout.MaxL1Bytes)
            throw new BlockException(Errno.EFBIG, "qcow2: the L1 table would exceed its size limit");
        await FlushTablesLockedAsync(ct).ConfigureAwait(false);
        long clusters = ((needed * 8) + _clusterSize - 1) >> _clusterBits;
        Debug(Schema.BlkdebugEvent.L1GrowAllocTable);
        long newOffset = await AllocateClustersLockedAsync(clusters).ConfigureAwait(false);
        var newL1 = new ulong[needed];
        Array.Copy(_l1, newL1, _l1.Length);
        byte[] buf = new byte[clusters << _clusterBits];
        for (long i = 0; i < needed; i++)
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(buf.AsSpan((int)(i * 8)), newL1[i]);
        Debug(Schema.BlkdebugEvent.L1GrowWriteTable);
        await _file.WriteAsync(newOffset, buf, RequestFlags.None, ct).ConfigureAwait(false);
        await WriteDirtyRefBlocksAsync().ConfigureAwait(false);
        await _file.FlushAsync(ct).ConfigureAwait(false);
        byte[] hdr = new byte[12];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(hdr, (uint)needed);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(hdr.AsSpan(4), (ulong)newOffset);
        Debug(Schema.BlkdebugEvent.L1GrowActivateTable);
        await _file.WriteAsync(Qcow2Header.L1SizeOffset, hdr, RequestFlags.None, ct).ConfigureAwait(false);
        await _file.FlushAsync(ct).ConfigureAwait(false);
        long oldOffset = _l1Offset;
        long oldClusters = ((_l1.Length * 8L) + _clusterSize - 1) >> _clusterBits;
        _l1 = newL1;
        _l1Offset = newOffset;
        _header = _header with { L1Size = (uint)needed, L1TableOffset = (ulong)newOffset };
        if (oldOffset != 0 && oldClusters > 0)
            QueueFree(oldOffset, oldClusters, FreeReason.Other);
    }
}
