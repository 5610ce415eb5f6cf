using System.Buffers.Binary;
using SharpBlock.Errors;
using SharpBlock.Io;

namespace SharpBlock.Drivers.Format.Vhdx;

public sealed partial class VhdxNode
{
    /// <summary>The BAT index of the payload block holding guest byte <paramref name="offset"/>.</summary>
    private int BatIndex(long offset)
    {
        long block = offset >> _blockBits;
        return (int)(block + (block >> _chunkRatioBits));
    }

    protected override async ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        while (buffer.Length > 0)
        {
            int inBlock = (int)(offset & (_blockSize - 1));
            int n = Math.Min(buffer.Length, _blockSize - inBlock);
            int index = BatIndex(offset);
            var e = BatEntry(index);
            switch (e.State)
            {
                case VhdxBlockState.NotPresent or VhdxBlockState.Undefined or VhdxBlockState.Zero or VhdxBlockState.Unmapped:
                    buffer.Span[..n].Clear();
                    break;
                case VhdxBlockState.FullyPresent:
                    await _file.ReadAsync(e.FileOffset + inBlock, buffer[..n], cancellationToken).ConfigureAwait(false);
                    break;
                default:
                    // Partially present blocks belong to differencing images, which are refused at open; QEMU
                    // answers EIO for them and for states the spec does not define.
                    throw new BlockException(Errno.EIO, $"VHDX block {index} of '{FileName}' has state {(int)e.State}, which cannot be read");
            }

            offset += n;
            buffer = buffer[n..];
        }
    }

    protected override async ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags, CancellationToken cancellationToken)
    {
        // Overwrites of present blocks need no metadata change and run in parallel; a block never leaves the
        // present state, so what is seen here stays true. Anything else is serialised with the allocations.
        if (!Volatile.Read(ref _firstVisibleWrite) && AllPresent(offset, data.Length))
        {
            while (data.Length > 0)
            {
                int inBlock = (int)(offset & (_blockSize - 1));
                int n = Math.Min(data.Length, _blockSize - inBlock);
                await _file.WriteAsync(BatEntry(BatIndex(offset)).FileOffset + inBlock, data[..n], flags, cancellationToken).ConfigureAwait(false);
                offset += n;
                data = data[n..];
            }

            return;
        }

        await _meta.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await UserVisibleWriteAsync(cancellationToken).ConfigureAwait(false);
            // New BAT entries of this request, made current only once the log has recorded them.
            Dictionary<int, ulong>? allocated = null;
            while (data.Length > 0)
            {
                int inBlock = (int)(offset & (_blockSize - 1));
                int n = Math.Min(data.Length, _blockSize - inBlock);
                int index = BatIndex(offset);
                var e = BatEntry(index);
                long at;
                switch (e.State)
                {
                    case VhdxBlockState.FullyPresent:
                        at = e.FileOffset;
                        break;
                    case VhdxBlockState.NotPresent or VhdxBlockState.Undefined or VhdxBlockState.Zero or VhdxBlockState.Unmapped:
                        // A new block goes at the end of the file (1 MiB aligned); growing the file gives it
                        // zeros around the guest's bytes, which is what every one of these states reads as.
                        at = VhdxLayout.RoundUp(_file.Length, VhdxLayout.MiB);
                        await _file.TruncateAsync(at + _blockSize, cancellationToken).ConfigureAwait(false);
                        (allocated ??= [])[index] = VhdxBatEntry.Of(VhdxBlockState.FullyPresent, at).Raw;
                        break;
                    default:
                        throw new BlockException(Errno.EIO, $"VHDX block {index} of '{FileName}' has state {(int)e.State}, which cannot be written");
                }

                await _file.WriteAsync(at + inBlock, data[..n], flags, cancellationToken).ConfigureAwait(false);
                offset += n;
                data = data[n..];
            }

            if (allocated != null)
                await CommitBatAsync(allocated, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _meta.Release();
        }
    }

    private bool AllPresent(long offset, long length)
    {
        for (long end = offset + length; offset < end; offset = (offset | (_blockSize - 1L)) + 1)
        {
            if (BatEntry(BatIndex(offset)).State != VhdxBlockState.FullyPresent)
                return false;
        }

        return true;
    }

    /// <summary>
    /// Write-zeroes never allocates: an absent block already reads as zeros, and a present one is zeroed in
    /// place (QEMU has no zero write for vhdx and writes a buffer of zeros; the result reads the same).
    /// </summary>
    protected override async ValueTask WriteZeroesCoreAsync(long offset, long length, RequestFlags flags, CancellationToken cancellationToken)
    {
        await _meta.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            while (length > 0)
            {
                int inBlock = (int)(offset & (_blockSize - 1));
                int n = (int)Math.Min(length, _blockSize - inBlock);
                int index = BatIndex(offset);
                var e = BatEntry(index);
                if (e.State == VhdxBlockState.FullyPresent)
                {
                    await UserVisibleWriteAsync(cancellationToken).ConfigureAwait(false);
                    await _file.WriteZeroesAsync(e.FileOffset + inBlock, n, flags & RequestFlags.Fua, cancellationToken).ConfigureAwait(false);
                }
                else if (e.State is not (VhdxBlockState.NotPresent or VhdxBlockState.Undefined or VhdxBlockState.Zero or VhdxBlockState.Unmapped))
                {
                    throw new BlockException(Errno.EIO, $"VHDX block {index} of '{FileName}' has state {(int)e.State}, which cannot be written");
                }

                offset += n;
                length -= n;
            }
        }
        finally
        {
            _meta.Release();
        }
    }

    /// <summary>The spec asks for a new data write GUID before the first change a guest can see.</summary>
    private async ValueTask UserVisibleWriteAsync(CancellationToken ct)
    {
        if (!_firstVisibleWrite)
            return;
        await UpdateHeadersAsync(true, null, ct).ConfigureAwait(false);
        // Only now may overwrites skip the lock: the new data write GUID is on disk before any guest data.
        Volatile.Write(ref _firstVisibleWrite, false);
    }

    /// <summary>
    /// Points the BAT at newly written blocks: their data is flushed first, then the changed BAT sectors go
    /// through the log (durable), then in place (durable), then the log is emptied. Only then does the
    /// in-memory BAT, which reads follow, name the blocks.
    /// </summary>
    private async ValueTask CommitBatAsync(Dictionary<int, ulong> entries, CancellationToken ct)
    {
        await _file.FlushAsync(ct).ConfigureAwait(false);
        var sectors = new SortedDictionary<long, byte[]>();
        foreach (var (index, entry) in entries)
        {
            long at = _batOffset + ((long)index * VhdxBatEntry.Size);
            long sectorAt = at & ~(long)(VhdxLayout.LogSectorSize - 1);
            if (!sectors.TryGetValue(sectorAt, out var sector))
            {
                sector = new byte[VhdxLayout.LogSectorSize];
                // The BAT in memory is the BAT on disk; sectors past the entries keep what the file holds.
                await _file.ReadAsync(sectorAt, sector, ct).ConfigureAwait(false);
                // The BAT starts on a 4 KiB boundary (checked at open), so a sector holds whole entries only.
                int first = (int)((sectorAt - _batOffset) / VhdxBatEntry.Size);
                for (int i = 0; i < VhdxLayout.LogSectorSize / VhdxBatEntry.Size && first + i < _bat.Length; i++)
                    BinaryPrimitives.WriteUInt64LittleEndian(sector.AsSpan(i * VhdxBatEntry.Size), _bat[first + i]);
                sectors.Add(sectorAt, sector);
            }

            BinaryPrimitives.WriteUInt64LittleEndian(sector.AsSpan((int)(at - sectorAt)), entry);
        }

        var list = new List<(long, byte[])>(sectors.Count);
        foreach (var (at, sector) in sectors)
            list.Add((at, sector));
        await WriteThroughLogAsync(list, ct).ConfigureAwait(false);
        foreach (var (index, entry) in entries)
            Volatile.Write(ref _bat[index], entry);
    }

    /// <summary>One logged metadata update: announce the log, write the entry, apply it, empty the log.</summary>
    private async ValueTask WriteThroughLogAsync(List<(long FileOffset, byte[] Sector)> sectors, CancellationToken ct)
    {
        var logGuid = Guid.NewGuid();
        await UpdateHeadersAsync(false, logGuid, ct).ConfigureAwait(false);
        await _log.WriteEntryAsync(logGuid, sectors, ct).ConfigureAwait(false);
        foreach (var (at, sector) in sectors)
            await _file.WriteAsync(at, sector, cancellationToken: ct).ConfigureAwait(false);
        await _file.FlushAsync(ct).ConfigureAwait(false);
        await UpdateHeadersAsync(false, Guid.Empty, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Rewrites the header not in use with the next sequence number, this session's file write GUID and the
    /// given changes, and makes it current; done twice, as the spec asks, so both copies end up current.
    /// </summary>
    private async ValueTask UpdateHeadersAsync(bool newDataWriteGuid, Guid? logGuid, CancellationToken ct)
    {
        var dataGuid = newDataWriteGuid ? Guid.NewGuid() : CurrentHeader.DataWriteGuid;
        byte[] buffer = new byte[VhdxHeader.Size];
        for (int pass = 0; pass < 2; pass++)
        {
            int target = 1 - _current;
            var h = CurrentHeader;
            var next = new VhdxHeader
            {
                Signature = VhdxLayout.HeaderSignature,
                SequenceNumber = h.SequenceNumber + 1,
                FileWriteGuid = _sessionGuid,
                DataWriteGuid = dataGuid,
                LogGuid = logGuid ?? h.LogGuid,
                LogVersion = h.LogVersion,
                Version = VhdxLayout.Version,
                LogLength = h.LogLength,
                LogOffset = h.LogOffset,
            };
            next.Write(buffer);
            await _file.WriteAsync(target == 0 ? VhdxLayout.Header1Offset : VhdxLayout.Header2Offset, buffer, cancellationToken: ct).ConfigureAwait(false);
            await _file.FlushAsync(ct).ConfigureAwait(false);
            _headers[target] = next;
            _current = target;
        }
    }
}
