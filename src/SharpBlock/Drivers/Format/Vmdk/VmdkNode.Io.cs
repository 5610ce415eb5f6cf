using SharpBlock.Schema;
using System.Buffers;
using SharpBlock.Errors;
using SharpBlock.Io;

namespace SharpBlock.Drivers.Format.Vmdk;

/// <summary>The guest request path: lookups and allocation under the metadata lock, data I/O to allocated grains outside it.</summary>
public sealed partial class VmdkNode
{
    private const int CopyChunk = 1 << 20;

    protected override async ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        while (buffer.Length > 0)
        {
            var extent = Find(offset);
            var m = await MapAsync(extent, offset, cancellationToken).ConfigureAwait(false);
            int n = (int)Math.Min(buffer.Length, m.Length);
            var chunk = buffer[..n];
            switch (m.State)
            {
                case VmdkGrainState.Unallocated:
                    await ReadBackingAsync(offset, chunk, cancellationToken).ConfigureAwait(false);
                    break;
                case VmdkGrainState.Zeroed:
                    chunk.Span.Clear();
                    break;
                case VmdkGrainState.Data:
                    extent.Debug.Raise(BlkdebugEvent.ReadAio);
                    await extent.File.ReadAsync(m.HostOffset, chunk, cancellationToken).ConfigureAwait(false);
                    break;
                case VmdkGrainState.Compressed:
                    await ReadCompressedAsync((VmdkSparseExtent)extent, m.HostOffset, (offset - extent.Start) % extent.GrainBytes, chunk, cancellationToken).ConfigureAwait(false);
                    break;
            }

            offset += n;
            buffer = buffer[n..];
        }
    }

    private static async ValueTask ReadCompressedAsync(VmdkSparseExtent extent, long host, long inGrain, Memory<byte> chunk, CancellationToken ct)
    {
        int grain = (int)extent.GrainBytes;
        byte[] buf = ArrayPool<byte>.Shared.Rent(grain);
        try
        {
            await extent.ReadCompressedAsync(host, buf.AsMemory(0, grain), ct).ConfigureAwait(false);
            buf.AsSpan((int)inGrain, chunk.Length).CopyTo(chunk.Span);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buf);
        }
    }

    /// <summary>
    /// Reads what the backing image holds (zeros without one, and past its end). The parent must still be the
    /// image this one was made on: its CID must equal our parentCID, or the read fails, as QEMU's does.
    /// </summary>
    private async ValueTask ReadBackingAsync(long offset, Memory<byte> chunk, CancellationToken ct)
    {
        var backing = Backing;
        if (backing == null)
        {
            chunk.Span.Clear();
            return;
        }

        CheckParentCid(backing);
        long avail = Math.Max(0, backing.Length - offset);
        int inBacking = (int)Math.Min(avail, chunk.Length);
        if (inBacking > 0)
            await backing.ReadAsync(offset, chunk[..inBacking], ct).ConfigureAwait(false);
        chunk.Span[inBacking..].Clear();
    }

    private void CheckParentCid(Graph.BlockNode backing)
    {
        if (_cidChecked)
            return;
        // A parent of another format has no CID, so nothing can vouch for it.
        if (backing is not VmdkNode parent || parent.Cid != ParentCid)
            throw new BlockException(Errno.EINVAL, $"Parent CID of '{Filename}' ({ParentCid:x8}) does not match the CID of its backing image '{backing.Filename}'");
        _cidChecked = true;
    }

    protected override async ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags, CancellationToken cancellationToken)
    {
        await UpdateCidOnceAsync(cancellationToken).ConfigureAwait(false);
        while (data.Length > 0)
        {
            var extent = Find(offset);
            var m = await MapAsync(extent, offset, cancellationToken).ConfigureAwait(false);
            int n = (int)Math.Min(data.Length, m.Length);
            var chunk = data[..n];
            if (m.State == VmdkGrainState.Data)
            {
                extent.Debug.Raise(BlkdebugEvent.WriteAio);
                await extent.File.WriteAsync(m.HostOffset, chunk, RequestFlags.None, cancellationToken).ConfigureAwait(false);
            }
            else
                await AllocatingWriteAsync((VmdkSparseExtent)extent, offset, chunk, cancellationToken).ConfigureAwait(false);
            offset += n;
            data = data[n..];
        }

        if ((flags & RequestFlags.Fua) != 0)
            await FlushCoreAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// A write to a grain that is not stored yet (or is zeroed): under the metadata lock a new grain is reserved at
    /// the end of the file and written whole (the guest's bytes, the rest from the backing image or zeros); only
    /// then is the table entry set, and it reaches the file at the next flush, after the grain.
    /// </summary>
    private async ValueTask AllocatingWriteAsync(VmdkSparseExtent extent, long offset, ReadOnlyMemory<byte> chunk, CancellationToken ct)
    {
        long inExtent = offset - extent.Start;
        long inGrain = inExtent % extent.GrainBytes;
        long grainStart = offset - inGrain;
        await _meta.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var m = await extent.MapAsync(inExtent, ct).ConfigureAwait(false);
            if (m.State == VmdkGrainState.Data)
            {
                // Another request allocated it meanwhile.
                extent.Debug.Raise(BlkdebugEvent.WriteAio);
                await extent.File.WriteAsync(m.HostOffset, chunk, RequestFlags.None, ct).ConfigureAwait(false);
                return;
            }

            if (extent.Compressed)
            {
                await CompressedWriteLockedAsync(extent, m.State, inExtent, inGrain, chunk, ct).ConfigureAwait(false);
                return;
            }

            long sector = extent.ReserveGrain();
            long host = sector * Vmdk.VmdkLayout.SectorSize;
            long grain = extent.GrainBytes;
            long tail = inGrain + chunk.Length;
            bool fromBacking = m.State == VmdkGrainState.Unallocated && Backing != null;
            await FillAsync(extent, host, grainStart, 0, inGrain, fromBacking, ct).ConfigureAwait(false);
            extent.Debug.Raise(BlkdebugEvent.WriteAio);
            await extent.File.WriteAsync(host + inGrain, chunk, RequestFlags.None, ct).ConfigureAwait(false);
            await FillAsync(extent, host, grainStart, tail, grain - tail, fromBacking, ct).ConfigureAwait(false);
            await extent.SetEntryAsync(inExtent, (uint)sector, ct).ConfigureAwait(false);
        }
        finally
        {
            _meta.Release();
        }
    }

    /// <summary>Fills part of a new grain: from the backing image when the grain fell through to it, else with zeros.</summary>
    private async ValueTask FillAsync(VmdkSparseExtent extent, long host, long guestGrain, long from, long length, bool fromBacking, CancellationToken ct)
    {
        if (length <= 0)
            return;
        if (!fromBacking)
        {
            await extent.File.WriteZeroesAsync(host + from, length, RequestFlags.None, ct).ConfigureAwait(false);
            return;
        }

        byte[] buf = ArrayPool<byte>.Shared.Rent((int)Math.Min(CopyChunk, length));
        try
        {
            for (long pos = 0; pos < length;)
            {
                int n = (int)Math.Min(buf.Length, length - pos);
                extent.Debug.Raise(BlkdebugEvent.CowRead);
                await ReadBackingAsync(guestGrain + from + pos, buf.AsMemory(0, n), ct).ConfigureAwait(false);
                extent.Debug.Raise(BlkdebugEvent.CowWrite);
                await extent.File.WriteAsync(host + from + pos, buf.AsMemory(0, n), RequestFlags.None, ct).ConfigureAwait(false);
                pos += n;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buf);
        }
    }

    /// <summary>
    /// streamOptimized grains are written once, whole and compressed, appended at the end of the file; an
    /// allocated grain cannot be rewritten (QEMU refuses it with the same words).
    /// </summary>
    private async ValueTask CompressedWriteLockedAsync(VmdkSparseExtent extent, VmdkGrainState state, long inExtent, long inGrain, ReadOnlyMemory<byte> chunk, CancellationToken ct)
    {
        if (state == VmdkGrainState.Compressed)
            throw new BlockException(Errno.EIO, "Could not write to allocated cluster for streamOptimized");
        bool whole = inGrain == 0 && (chunk.Length == extent.GrainBytes || inExtent + chunk.Length == extent.Length);
        if (!whole)
            throw new BlockException(Errno.EINVAL, "streamOptimized images take writes of whole grains only");
        long sector = await extent.AppendCompressedAsync(inExtent, chunk, ct).ConfigureAwait(false);
        await extent.SetEntryAsync(inExtent, (uint)sector, ct).ConfigureAwait(false);
    }

    protected override async ValueTask WriteZeroesCoreAsync(long offset, long length, RequestFlags flags, CancellationToken cancellationToken)
    {
        await UpdateCidOnceAsync(cancellationToken).ConfigureAwait(false);
        while (length > 0)
        {
            var extent = Find(offset);
            long inExtent = offset - extent.Start;
            long n;
            if (extent is VmdkFlatExtent flat)
            {
                n = Math.Min(length, extent.End - offset);
                await flat.File.WriteZeroesAsync(flat.Offset + inExtent, n, flags & ~RequestFlags.Fua, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                var sparse = (VmdkSparseExtent)extent;
                long inGrain = inExtent % sparse.GrainBytes;
                n = Math.Min(length, Math.Min(sparse.GrainBytes - inGrain, extent.End - offset));
                if (sparse.ZeroGrains && !sparse.Compressed && inGrain == 0 && n == sparse.GrainBytes)
                {
                    // A whole grain becomes a zeroed grain; the grain it may have had is left behind (QEMU does the same).
                    await _meta.WaitAsync(cancellationToken).ConfigureAwait(false);
                    try
                    {
                        await sparse.SetEntryAsync(inExtent, Vmdk.VmdkLayout.GteZeroed, cancellationToken).ConfigureAwait(false);
                    }
                    finally
                    {
                        _meta.Release();
                    }
                }
                else
                {
                    await WriteZeroBufferAsync(offset, n, cancellationToken).ConfigureAwait(false);
                }
            }

            offset += n;
            length -= n;
        }

        if ((flags & RequestFlags.Fua) != 0)
            await FlushCoreAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Without zeroed grains, zeros are written as data, as QEMU falls back to.</summary>
    private async ValueTask WriteZeroBufferAsync(long offset, long length, CancellationToken ct)
    {
        byte[] zeros = ArrayPool<byte>.Shared.Rent((int)Math.Min(CopyChunk, length));
        try
        {
            Array.Clear(zeros);
            while (length > 0)
            {
                int n = (int)Math.Min(zeros.Length, length);
                await WriteCoreAsync(offset, zeros.AsMemory(0, n), RequestFlags.None, ct).ConfigureAwait(false);
                offset += n;
                length -= n;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(zeros);
        }
    }

    /// <summary>QEMU's vmdk driver cannot resize; refused in qemu-img's words.</summary>
    protected override ValueTask TruncateCoreAsync(long size, CancellationToken cancellationToken) =>
        throw new BlockException(Errno.EOPNOTSUPP, "Image format driver does not support resize");

    protected override async ValueTask<BlockStatus> BlockStatusCoreAsync(long offset, long length, CancellationToken cancellationToken)
    {
        var extent = Find(offset);
        var m = await MapAsync(extent, offset, cancellationToken).ConfigureAwait(false);
        long n = Math.Min(length, m.Length);
        switch (m.State)
        {
            case VmdkGrainState.Unallocated:
                return new BlockStatus(Backing == null ? BlockStatusFlags.Zero : BlockStatusFlags.None, n);
            case VmdkGrainState.Zeroed:
                return new BlockStatus(BlockStatusFlags.Zero | BlockStatusFlags.Allocated, n);
            case VmdkGrainState.Compressed:
                return new BlockStatus(BlockStatusFlags.Data | BlockStatusFlags.Allocated, n, 0, extent.File);
        }

        if (extent is VmdkFlatExtent)
        {
            // A flat extent is as sparse as its file: ask the file whether the range reads zeros.
            var fs = await extent.File.GetBlockStatusAsync(m.HostOffset, n, cancellationToken).ConfigureAwait(false);
            var flags = BlockStatusFlags.Data | BlockStatusFlags.Allocated | BlockStatusFlags.OffsetValid | (fs.Flags & BlockStatusFlags.Zero);
            return new BlockStatus(flags, fs.Length > 0 ? Math.Min(n, fs.Length) : n, m.HostOffset, extent.File);
        }

        return new BlockStatus(BlockStatusFlags.Data | BlockStatusFlags.Allocated | BlockStatusFlags.OffsetValid, n, m.HostOffset, extent.File);
    }
}
