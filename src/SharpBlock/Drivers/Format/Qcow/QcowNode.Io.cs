using SharpBlock.Schema;
using System.Buffers;
using System.Buffers.Binary;
using SharpBlock.Drivers.Format.Qcow2;
using SharpBlock.Errors;
using SharpBlock.Io;

namespace SharpBlock.Drivers.Format.Qcow;

/// <summary>
/// Reads, allocating writes, compressed writes and flushes. Every allocation appends: a whole cluster (old
/// contents, from the backing file or an older compressed copy, merged with the new bytes) or a new L2 table,
/// at <see cref="_next"/>. The L2 entry and, for a new table, the L1 entry change only in memory; the flush
/// writes them after a flush of the data, L2 tables before the L1 entries naming them, so a crash leaves at
/// worst leaked clusters, never a table entry pointing at data that is not there.
/// </summary>
public sealed partial class QcowNode : ICompressedWrites
{
    private readonly SemaphoreSlim _lock = new(1, 1);
    private readonly Dictionary<long, ulong[]> _l2Cache = [];
    private readonly HashSet<long> _dirtyL2 = [];
    private readonly SortedSet<long> _dirtyL1 = [];
    private long _next;

    /// <summary>An L2 entry (0 for a cluster never written), loading its table if need be. Caller holds the lock.</summary>
    private async ValueTask<ulong> EntryAsync(long cluster, CancellationToken ct)
    {
        var table = await TableAsync(cluster >> (_header.L2Bits), allocate: false, ct).ConfigureAwait(false);
        return table == null ? 0 : table[cluster & (_l2Entries - 1)];
    }

    private async ValueTask<ulong[]?> TableAsync(long l1Index, bool allocate, CancellationToken ct)
    {
        if (_l2Cache.TryGetValue(l1Index, out var cached))
            return cached;
        ulong l2Offset = _l1[l1Index];
        if (l2Offset == 0 && !allocate)
            return null;
        if (_l2Cache.Count >= L2CacheTables)
        {
            if (_dirtyL2.Count > 0)
                await WriteTablesAsync(ct).ConfigureAwait(false);
            _l2Cache.Clear();
        }

        var table = new ulong[_l2Entries];
        if (l2Offset == 0)
        {
            // A new table: its place is reserved now, its contents written at the flush before the L1 entry.
            long at = AlignUp(_next, _clusterSize);
            _next = at + ((long)_l2Entries * 8);
            _l1[l1Index] = (ulong)at;
            _dirtyL1.Add(l1Index);
            _dirtyL2.Add(l1Index);
        }
        else
        {
            int bytes = _l2Entries * 8;
            if (l2Offset > (ulong)_file.Length || (long)l2Offset + bytes > _file.Length)
                throw new ImageCorruptException(FileName, "L1 entry", (long)_header.L1TableOffset + (l1Index * 8), $"L2 table at 0x{l2Offset:x} lies beyond the end of the file ({_file.Length} bytes)");
            byte[] raw = ArrayPool<byte>.Shared.Rent(bytes);
            try
            {
                _debug.Raise(BlkdebugEvent.L2Load);
                await _file.ReadAsync((long)l2Offset, raw.AsMemory(0, bytes), ct).ConfigureAwait(false);
                for (int i = 0; i < table.Length; i++)
                    table[i] = BinaryPrimitives.ReadUInt64BigEndian(raw.AsSpan(i * 8));
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(raw);
            }
        }

        _l2Cache[l1Index] = table;
        return table;
    }

    private async ValueTask SetEntryAsync(long cluster, ulong entry, CancellationToken ct)
    {
        long l1Index = cluster >> _header.L2Bits;
        if (l1Index >= _l1.Length)
            throw new BlockException(Errno.EINVAL, "write beyond the end of the image");
        var table = (await TableAsync(l1Index, allocate: true, ct).ConfigureAwait(false))!;
        table[cluster & (_l2Entries - 1)] = entry;
        _dirtyL2.Add(l1Index);
    }

    private bool IsCompressed(ulong entry) => (entry & QcowLayout.CompressedFlag) != 0;

    private long OffsetMask => (1L << (63 - _clusterBits)) - 1;

    protected override async ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        RequireKey();
        while (buffer.Length > 0)
        {
            long cluster = offset >> _clusterBits;
            int inCluster = (int)(offset & (_clusterSize - 1));
            int n = Math.Min(buffer.Length, _clusterSize - inCluster);
            ulong entry;
            await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                entry = await EntryAsync(cluster, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                _lock.Release();
            }

            _debug.Raise(entry == 0 ? BlkdebugEvent.ReadBackingAio : IsCompressed(entry) ? BlkdebugEvent.ReadCompressed : BlkdebugEvent.ReadAio);
            await ReadClusterPartAsync(cluster, entry, inCluster, buffer[..n], cancellationToken).ConfigureAwait(false);
            offset += n;
            buffer = buffer[n..];
        }
    }

    /// <summary>Part of one guest cluster as <paramref name="entry"/> maps it: the backing file, a deflated copy or plain data.</summary>
    private async ValueTask ReadClusterPartAsync(long cluster, ulong entry, int inCluster, Memory<byte> chunk, CancellationToken ct)
    {
        long guest = (cluster << _clusterBits) + inCluster;
        if (entry == 0)
        {
            await ReadBackingAsync(guest, chunk, ct).ConfigureAwait(false);
            return;
        }

        if (IsCompressed(entry))
        {
            byte[] whole = ArrayPool<byte>.Shared.Rent(_clusterSize);
            try
            {
                await InflateAsync(cluster, entry, whole.AsMemory(0, _clusterSize), ct).ConfigureAwait(false);
                whole.AsSpan(inCluster, chunk.Length).CopyTo(chunk.Span);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(whole);
            }

            return;
        }

        await ReadDataAsync((long)entry + inCluster, guest, chunk, ct).ConfigureAwait(false);
    }

    private async ValueTask InflateAsync(long cluster, ulong entry, Memory<byte> into, CancellationToken ct)
    {
        long at = (long)entry & OffsetMask;
        int size = (int)((entry >> (63 - _clusterBits)) & (ulong)(_clusterSize - 1));
        if (at >= _file.Length)
            throw new ImageCorruptException(FileName, "compressed L2 entry", cluster << _clusterBits, $"cluster data at 0x{at:x} lies beyond the end of the file ({_file.Length} bytes)");
        byte[] packed = ArrayPool<byte>.Shared.Rent(Math.Max(size, 1));
        try
        {
            await ReadFileAsync(at, packed.AsMemory(0, size), ct).ConfigureAwait(false);
            if (!Qcow2Compression.Decompress(packed, size, into.Span))
                throw new BlockException(Errno.EIO, $"Could not decompress qcow cluster at guest offset {cluster << _clusterBits} (file offset 0x{at:x}, {size} bytes)");
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(packed);
        }
    }

    /// <summary>What the backing image holds (zeros without one, and past its end).</summary>
    private async ValueTask ReadBackingAsync(long offset, Memory<byte> chunk, CancellationToken ct)
    {
        var backing = Backing;
        long avail = backing == null ? 0 : Math.Max(0, backing.Length - offset);
        int inBacking = (int)Math.Min(avail, chunk.Length);
        if (inBacking > 0)
            await backing!.ReadAsync(offset, chunk[..inBacking], ct).ConfigureAwait(false);
        chunk.Span[inBacking..].Clear();
    }

    /// <summary>Reads the file, with zeros past its end (the last cluster QEMU writes may be short).</summary>
    private async ValueTask ReadFileAsync(long at, Memory<byte> buffer, CancellationToken ct)
    {
        long have = Math.Clamp(_file.Length - at, 0, buffer.Length);
        if (have > 0)
            await _file.ReadAsync(at, buffer[..(int)have], ct).ConfigureAwait(false);
        buffer.Span[(int)have..].Clear();
    }

    protected override async ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags, CancellationToken cancellationToken)
    {
        RequireKey();
        while (data.Length > 0)
        {
            long cluster = offset >> _clusterBits;
            int inCluster = (int)(offset & (_clusterSize - 1));
            int n = Math.Min(data.Length, _clusterSize - inCluster);
            await WriteClusterAsync(cluster, inCluster, data[..n], compressed: default, cancellationToken).ConfigureAwait(false);
            offset += n;
            data = data[n..];
        }

        if ((flags & RequestFlags.Fua) != 0)
            await FlushCoreAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Writes into one cluster: in place when it holds plain data already; otherwise a new cluster at the end
    /// holding the old contents merged with the new bytes (or the deflated cluster given).
    /// </summary>
    private async ValueTask WriteClusterAsync(long cluster, int inCluster, ReadOnlyMemory<byte> data, ReadOnlyMemory<byte> compressed, CancellationToken ct)
    {
        await _lock.WaitAsync(ct).ConfigureAwait(false);
        byte[]? whole = null;
        try
        {
            ulong entry = await EntryAsync(cluster, ct).ConfigureAwait(false);
            if (entry != 0 && !IsCompressed(entry) && compressed.Length == 0)
            {
                _debug.Raise(BlkdebugEvent.WriteAio);
                await WriteDataAsync((long)entry + inCluster, (cluster << _clusterBits) + inCluster, data, ct).ConfigureAwait(false);
                return;
            }

            if (compressed.Length > 0)
            {
                long at = _next;
                if (at > OffsetMask)
                    throw new BlockException(Errno.EFBIG, "qcow image file too large for compressed clusters");
                _debug.Raise(BlkdebugEvent.WriteCompressed);
                await _file.WriteAsync(at, compressed, RequestFlags.None, ct).ConfigureAwait(false);
                _next = at + compressed.Length;
                await SetEntryAsync(cluster, QcowLayout.CompressedFlag | ((ulong)compressed.Length << (63 - _clusterBits)) | (ulong)at, ct).ConfigureAwait(false);
                return;
            }

            whole = ArrayPool<byte>.Shared.Rent(_clusterSize);
            var buf = whole.AsMemory(0, _clusterSize);
            bool cow = data.Length < _clusterSize;
            if (cow)
            {
                _debug.Raise(BlkdebugEvent.CowRead);
                await ReadClusterPartAsync(cluster, entry, 0, buf, ct).ConfigureAwait(false);
            }

            data.CopyTo(buf[inCluster..]);
            long place = AlignUp(_next, _clusterSize);
            // One write carries the old contents and the guest's bytes together.
            _debug.Raise(cow ? BlkdebugEvent.CowWrite : BlkdebugEvent.WriteAio);
            await WriteDataAsync(place, cluster << _clusterBits, buf, ct).ConfigureAwait(false);
            _next = place + _clusterSize;
            await SetEntryAsync(cluster, (ulong)place, ct).ConfigureAwait(false);
        }
        finally
        {
            if (whole != null)
                ArrayPool<byte>.Shared.Return(whole);
            _lock.Release();
        }
    }

    /// <summary>
    /// A cluster never written reads as zeros already when there is no backing file, so it is left alone;
    /// anything else gets zeros written (QEMU's qcow has no zero write either).
    /// </summary>
    protected override async ValueTask WriteZeroesCoreAsync(long offset, long length, RequestFlags flags, CancellationToken cancellationToken)
    {
        RequireKey();
        byte[] zeros = new byte[_clusterSize];
        while (length > 0)
        {
            long cluster = offset >> _clusterBits;
            int inCluster = (int)(offset & (_clusterSize - 1));
            int n = (int)Math.Min(length, _clusterSize - inCluster);
            ulong entry;
            await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                entry = await EntryAsync(cluster, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                _lock.Release();
            }

            if (entry != 0 || Backing != null)
                await WriteClusterAsync(cluster, inCluster, zeros.AsMemory(0, n), default, cancellationToken).ConfigureAwait(false);
            offset += n;
            length -= n;
        }

        if ((flags & RequestFlags.Fua) != 0)
            await FlushCoreAsync(cancellationToken).ConfigureAwait(false);
    }

    int ICompressedWrites.CompressCluster(ReadOnlySpan<byte> cluster, Span<byte> output)
    {
        // QEMU inflates every compressed cluster to its whole size, so the image's short last cluster is padded with zeros.
        int n;
        if (cluster.Length < _clusterSize)
        {
            byte[] whole = new byte[_clusterSize];
            cluster.CopyTo(whole);
            n = Qcow2Compression.Compress(whole, output);
        }
        else
        {
            n = Qcow2Compression.Compress(cluster, output);
        }

        // QEMU stores a cluster plainly unless deflating shrinks it.
        return n > 0 && n < _clusterSize ? n : -1;
    }

    ValueTask ICompressedWrites.WriteCompressedAsync(long offset, ReadOnlyMemory<byte> cluster, ReadOnlyMemory<byte> compressed, CancellationToken cancellationToken)
    {
        if (ReadOnly)
            throw new BlockException(Errno.EPERM, $"Node '{NodeName}' is read-only");
        // A compressed cluster is stored in the clear, which would leave guest data unencrypted.
        if (Encrypted)
            throw new BlockException(Errno.EOPNOTSUPP, "Compression and encryption not supported at the same time");
        return WriteClusterAsync(offset >> _clusterBits, 0, cluster, compressed, cancellationToken);
    }

    protected override async ValueTask FlushCoreAsync(CancellationToken cancellationToken)
    {
        _debug.Raise(BlkdebugEvent.FlushToOs);
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await WriteTablesAsync(cancellationToken).ConfigureAwait(false);
            _debug.Raise(BlkdebugEvent.FlushToDisk);
            await _file.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Data flushed first, then the dirty L2 tables, flushed, then the L1 entries that name new tables. Caller holds the lock.</summary>
    private async ValueTask WriteTablesAsync(CancellationToken ct)
    {
        if (_dirtyL2.Count == 0 && _dirtyL1.Count == 0)
            return;
        _debug.Raise(BlkdebugEvent.FlushToDisk);
        await _file.FlushAsync(ct).ConfigureAwait(false);
        int bytes = _l2Entries * 8;
        byte[] raw = ArrayPool<byte>.Shared.Rent(bytes);
        try
        {
            foreach (long i in _dirtyL2)
            {
                var table = _l2Cache[i];
                for (int e = 0; e < table.Length; e++)
                    BinaryPrimitives.WriteUInt64BigEndian(raw.AsSpan(e * 8), table[e]);
                // A table an L1 entry does not name yet is a new one.
                _debug.Raise(_dirtyL1.Contains(i) ? BlkdebugEvent.L2AllocWrite : BlkdebugEvent.L2Update);
                await _file.WriteAsync((long)_l1[i], raw.AsMemory(0, bytes), RequestFlags.None, ct).ConfigureAwait(false);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(raw);
        }

        _dirtyL2.Clear();
        if (_dirtyL1.Count > 0)
        {
            _debug.Raise(BlkdebugEvent.FlushToDisk);
            await _file.FlushAsync(ct).ConfigureAwait(false);
            long first = _dirtyL1.Min, last = _dirtyL1.Max;
            byte[] l1 = new byte[(last - first + 1) * 8];
            for (long i = first; i <= last; i++)
                BinaryPrimitives.WriteUInt64BigEndian(l1.AsSpan((int)((i - first) * 8)), _l1[i]);
            _debug.Raise(BlkdebugEvent.L1Update);
            await _file.WriteAsync((long)_header.L1TableOffset + (first * 8), l1, RequestFlags.None, ct).ConfigureAwait(false);
            _dirtyL1.Clear();
        }
    }

    protected override async ValueTask<BlockStatus> BlockStatusCoreAsync(long offset, long length, CancellationToken cancellationToken)
    {
        long cluster = offset >> _clusterBits;
        long inCluster = offset & (_clusterSize - 1);
        long n = Math.Min(length, _clusterSize - inCluster);
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ulong entry = await EntryAsync(cluster, cancellationToken).ConfigureAwait(false);
            if (entry == 0)
            {
                // A run of unwritten clusters within the image: this layer has nothing there.
                // Whole L1 entries without a table are skipped at once; the scan is capped so a huge sparse image answers quickly.
                long c = cluster + 1;
                for (int steps = 0; n < length && (c << _clusterBits) < _length && steps < 4 * _l2Entries; steps++)
                {
                    long l1Index = c >> _header.L2Bits;
                    if (_l1[l1Index] == 0 && !_l2Cache.ContainsKey(l1Index))
                    {
                        long next = (l1Index + 1) << _header.L2Bits;
                        n += (next - c) << _clusterBits;
                        c = next;
                        continue;
                    }

                    if (await EntryAsync(c, cancellationToken).ConfigureAwait(false) != 0)
                        break;
                    n += _clusterSize;
                    c++;
                }

                return new BlockStatus(Backing == null ? BlockStatusFlags.Zero : BlockStatusFlags.None, Math.Min(n, length));
            }

            // Ciphertext offsets are no use to a reader, and a hole in the file would decrypt to noise.
            if (IsCompressed(entry) || Encrypted)
                return new BlockStatus(BlockStatusFlags.Data | BlockStatusFlags.Allocated, n);
            return new BlockStatus(BlockStatusFlags.Data | BlockStatusFlags.Allocated | BlockStatusFlags.OffsetValid, n, (long)entry + inCluster, _file);
        }
        finally
        {
            _lock.Release();
        }
    }
}
