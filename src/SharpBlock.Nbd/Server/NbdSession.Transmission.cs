using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using SharpBlock.Copy;
using SharpBlock.Errors;
using SharpBlock.Io;
using SharpBlock.Jobs;
using SharpBlock.Nbd.Protocol;

namespace SharpBlock.Nbd.Server;

internal sealed partial class NbdSession
{
    /// <summary>Room in front of a read buffer for the reply header, so a one-chunk read goes out in one write.</summary>
    private const int ReadHeadroom = StructuredReplyHeader.Size + 8;

    /// <summary>
    /// Reads requests and starts each one as soon as it is framed; replies go out as the requests finish,
    /// in any order. Returns at NBD_CMD_DISC or end of stream, after the requests in flight are answered.
    /// </summary>
    private async ValueTask TransmitAsync(NbdExport export, CancellationToken ct)
    {
        while (true)
        {
            RequestHeader h;
            byte[]? payload = null;
            while (true)
            {
                var result = await _reader.ReadAsync(ct).ConfigureAwait(false);
                var buffer = result.Buffer;
                if (NbdFrameReader.TryReadRequest(ref buffer, out h, out var data))
                {
                    if (data.Length > 0)
                    {
                        payload = ArrayPool<byte>.Shared.Rent((int)data.Length);
                        data.CopyTo(payload);
                    }

                    _reader.AdvanceTo(buffer.Start);
                    break;
                }

                if (result.IsCompleted || result.IsCanceled)
                    return;
                _reader.AdvanceTo(buffer.Start, buffer.End);
            }

            if (h.Command == NbdCommand.Disc)
                return;
            if (_writeFailed)
            {
                if (payload != null)
                    ArrayPool<byte>.Shared.Return(payload);
                return;
            }

            long bytes = h.Command is NbdCommand.Read or NbdCommand.Write ? h.Length : 0;
            try
            {
                await _limiter.AcquireAsync(bytes, ct).ConfigureAwait(false);
            }
            catch
            {
                if (payload != null)
                    ArrayPool<byte>.Shared.Return(payload);
                throw;
            }

            _ = HandleAsync(export, h, payload, bytes);
        }
    }

    private async Task HandleAsync(NbdExport export, RequestHeader h, byte[]? payload, long bytes)
    {
        try
        {
            await Task.Yield();
            uint error = Validate(export, h);
            if (error != 0)
            {
                await ErrorReplyAsync(h, error, "invalid request").ConfigureAwait(false);
                return;
            }

            var dev = export.Device;
            long offset = (long)h.Offset;
            // A writethrough export makes every write durable before its reply, whether the client asked or not.
            var fua = (h.Flags & NbdCommandFlags.Fua) != 0 || export.Writethrough ? RequestFlags.Fua : RequestFlags.None;
            try
            {
                switch (h.Command)
                {
                    case NbdCommand.Read:
                        await ReadAsync(export, h).ConfigureAwait(false);
                        return;
                    case NbdCommand.Write:
                        await dev.WriteAsync(offset, payload.AsMemory(0, (int)h.Length), fua).ConfigureAwait(false);
                        break;
                    case NbdCommand.Flush:
                        await dev.FlushAsync().ConfigureAwait(false);
                        break;
                    case NbdCommand.Trim:
                        await dev.DiscardAsync(offset, h.Length).ConfigureAwait(false);
                        if (fua != 0)
                            await dev.FlushAsync().ConfigureAwait(false);
                        break;
                    case NbdCommand.WriteZeroes:
                        {
                            var zf = fua;
                            if ((h.Flags & NbdCommandFlags.NoHole) == 0)
                                zf |= RequestFlags.MayUnmap;
                            if ((h.Flags & NbdCommandFlags.FastZero) != 0)
                                zf |= RequestFlags.NoFallback;
                            await dev.WriteZeroesAsync(offset, h.Length, zf).ConfigureAwait(false);
                            break;
                        }

                    case NbdCommand.Cache:
                        // Our devices have no cache worth priming; the hint is accepted and costs nothing.
                        break;
                    case NbdCommand.BlockStatus:
                        await BlockStatusAsync(export, h).ConfigureAwait(false);
                        return;
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                var errno = BlockException.ErrnoOf(ex);
                await ErrorReplyAsync(h, NbdError.FromErrno(errno), ex.Message).ConfigureAwait(false);
                return;
            }

            await SimpleReplyAsync(h.Cookie, 0).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or OperationCanceledException)
        {
            _writeFailed = true;
        }
        finally
        {
            if (payload != null)
                ArrayPool<byte>.Shared.Return(payload);
            _limiter.Release(bytes);
        }
    }

    /// <summary>The errno for a request no valid use of the export sends, or 0.</summary>
    private uint Validate(NbdExport export, RequestHeader h)
    {
        var allowed = NbdCommandFlags.Fua;
        switch (h.Command)
        {
            case NbdCommand.Read:
                if (_structured)
                    allowed |= NbdCommandFlags.Df;
                break;
            case NbdCommand.WriteZeroes:
                allowed |= NbdCommandFlags.NoHole | NbdCommandFlags.FastZero;
                break;
            case NbdCommand.BlockStatus:
                allowed |= NbdCommandFlags.ReqOne;
                break;
            case NbdCommand.Write or NbdCommand.Flush or NbdCommand.Trim or NbdCommand.Cache:
                break;
            default:
                return NbdError.EINVAL;
        }

        if ((h.Flags & ~allowed) != 0)
            return NbdError.EINVAL;
        bool writes = h.Command is NbdCommand.Write or NbdCommand.WriteZeroes or NbdCommand.Trim;
        if (writes && !export.Writable)
            return NbdError.EPERM;
        if (h.Command == NbdCommand.Flush)
            return h.Offset == 0 && h.Length == 0 ? 0 : NbdError.EINVAL;
        if (h.Command == NbdCommand.BlockStatus && (_contexts.Length == 0 || h.Length == 0))
            return NbdError.EINVAL;
        ulong size = (ulong)export.Device.Length;
        if (h.Offset > size || h.Length > size - h.Offset)
            return h.Command is NbdCommand.Write or NbdCommand.WriteZeroes ? NbdError.ENOSPC : NbdError.EINVAL;
        return 0;
    }

    /// <summary>
    /// READ with structured replies: the whole range is read through the device (so its statistics count it
    /// once), then ranges that block status calls zero, and that really are zero in what was read, go out
    /// as OFFSET_HOLE chunks instead of bytes. Checking the bytes keeps the answer right even if a write
    /// raced the status query.
    /// </summary>
    private async ValueTask ReadAsync(NbdExport export, RequestHeader h)
    {
        int len = (int)h.Length;
        long offset = (long)h.Offset;
        byte[] buf = ArrayPool<byte>.Shared.Rent(ReadHeadroom + len);
        try
        {
            var data = buf.AsMemory(ReadHeadroom, len);
            await export.Device.ReadAsync(offset, data).ConfigureAwait(false);
            if (!_structured)
            {
                new SimpleReplyHeader(NbdConstants.SimpleReplyMagic, 0, h.Cookie).Write(buf.AsSpan(ReadHeadroom - SimpleReplyHeader.Size));
                await SendAsync(buf.AsMemory(ReadHeadroom - SimpleReplyHeader.Size, SimpleReplyHeader.Size + len)).ConfigureAwait(false);
                return;
            }

            if (len == 0)
            {
                // An OFFSET_DATA chunk must carry at least one byte; an empty read is answered with NONE.
                var none = new byte[StructuredReplyHeader.Size];
                new StructuredReplyHeader(NbdConstants.StructuredReplyMagic, NbdChunkFlags.Done, NbdChunkType.None, h.Cookie, 0).Write(none);
                await SendAsync(none).ConfigureAwait(false);
                return;
            }

            if ((h.Flags & NbdCommandFlags.Df) != 0)
            {
                await DataChunkAsync(h.Cookie, buf, 0, len, offset, last: true).ConfigureAwait(false);
                return;
            }

            // Walk the range: runs of data and runs of verified zeros, each sent as one chunk.
            int pos = 0;
            int dataStart = 0;
            while (pos < len)
            {
                var st = await export.Device.GetBlockStatusAsync(offset + pos, len - pos).ConfigureAwait(false);
                int run = (int)Math.Min(st.Length, len - pos);
                if (run <= 0)
                    run = len - pos;
                bool hole = st.IsZero && !data.Span.Slice(pos, run).ContainsAnyExcept((byte)0);
                if (hole)
                {
                    if (pos > dataStart)
                        await DataChunkAsync(h.Cookie, buf, dataStart, pos - dataStart, offset + dataStart, last: false).ConfigureAwait(false);
                    bool last = pos + run == len;
                    await HoleChunkAsync(h.Cookie, offset + pos, run, last).ConfigureAwait(false);
                    dataStart = pos + run;
                }

                pos += run;
            }

            if (dataStart < len)
                await DataChunkAsync(h.Cookie, buf, dataStart, len - dataStart, offset + dataStart, last: true).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is BlockException || ex is not (OperationCanceledException or IOException))
        {
            var errno = BlockException.ErrnoOf(ex);
            await ErrorReplyAsync(h, NbdError.FromErrno(errno), ex.Message).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buf);
        }
    }

    /// <summary>Sends buf[ReadHeadroom + start ..] as an OFFSET_DATA chunk; the header goes in the bytes just before it.</summary>
    private async ValueTask DataChunkAsync(ulong cookie, byte[] buf, int start, int length, long offset, bool last)
    {
        var flags = last ? NbdChunkFlags.Done : NbdChunkFlags.None;
        if (start == 0)
        {
            var head = buf.AsSpan(0, ReadHeadroom);
            new StructuredReplyHeader(NbdConstants.StructuredReplyMagic, flags, NbdChunkType.OffsetData, cookie, (uint)(8 + length)).Write(head);
            BinaryPrimitives.WriteUInt64BigEndian(head[StructuredReplyHeader.Size..], (ulong)offset);
            await SendAsync(buf.AsMemory(0, ReadHeadroom + length)).ConfigureAwait(false);
            return;
        }

        var header = new byte[ReadHeadroom];
        new StructuredReplyHeader(NbdConstants.StructuredReplyMagic, flags, NbdChunkType.OffsetData, cookie, (uint)(8 + length)).Write(header);
        BinaryPrimitives.WriteUInt64BigEndian(header.AsSpan(StructuredReplyHeader.Size), (ulong)offset);
        await SendAsync(header, buf.AsMemory(ReadHeadroom + start, length)).ConfigureAwait(false);
    }

    private ValueTask HoleChunkAsync(ulong cookie, long offset, int length, bool last)
    {
        var msg = new byte[StructuredReplyHeader.Size + OffsetHole.Size];
        new StructuredReplyHeader(NbdConstants.StructuredReplyMagic, last ? NbdChunkFlags.Done : NbdChunkFlags.None,
            NbdChunkType.OffsetHole, cookie, OffsetHole.Size).Write(msg);
        new OffsetHole((ulong)offset, (uint)length).Write(msg.AsSpan(StructuredReplyHeader.Size));
        return SendAsync(msg);
    }

    /// <summary>
    /// BLOCK_STATUS: one chunk per context the client selected, in the order it selected them, the last one
    /// flagged done. Each chunk covers the range from its start (at most MaxExtents extents, or exactly one
    /// with REQ_ONE), equal neighbours merged.
    /// </summary>
    private async ValueTask BlockStatusAsync(NbdExport export, RequestHeader h)
    {
        bool one = (h.Flags & NbdCommandFlags.ReqOne) != 0;
        long offset = (long)h.Offset;
        long end = offset + h.Length;
        var contexts = _contexts;
        var chunks = new List<byte[]>(contexts.Length);
        foreach (var c in contexts)
        {
            var extents = new ExtentList(one);
            switch (c.Kind)
            {
                case MetaContextKind.BaseAllocation:
                    await AllocationExtentsAsync(export, offset, end, extents).ConfigureAwait(false);
                    break;
                case MetaContextKind.AllocationDepth:
                    await DepthExtentsAsync(export, offset, end, extents).ConfigureAwait(false);
                    break;
                default:
                    BitmapExtents(c.Bitmap!.Bits, offset, end, extents);
                    break;
            }

            chunks.Add(extents.ToChunk(h.Cookie, c.Id));
        }

        // Only the last chunk ends the reply; every chunk is built before any is sent, so an error while
        // looking a status up still gets a clean error reply.
        for (int i = 0; i < chunks.Count; i++)
        {
            if (i == chunks.Count - 1)
                BinaryPrimitives.WriteUInt16BigEndian(chunks[i].AsSpan(4), (ushort)NbdChunkFlags.Done);
            await SendAsync(chunks[i]).ConfigureAwait(false);
        }
    }

    private static async ValueTask AllocationExtentsAsync(NbdExport export, long offset, long end, ExtentList extents)
    {
        for (long pos = offset; pos < end && !extents.Full;)
        {
            var st = await export.Device.GetBlockStatusAsync(pos, end - pos).ConfigureAwait(false);
            long run = Math.Min(st.Length, end - pos);
            uint flags = (uint)((st.IsData ? NbdAllocationFlags.None : NbdAllocationFlags.Hole) | (st.IsZero ? NbdAllocationFlags.Zero : NbdAllocationFlags.None));
            extents.Add(run, flags);
            pos += run;
        }
    }

    /// <summary>
    /// qemu:allocation-depth: 1 for the exported node's own extents, 2 for its backing file's, and so on; 0
    /// where no layer holds the extent. As in QEMU, the bottom layer holds what it reports as data or as
    /// stored zeros (a raw file's holes included); only a format's unallocated clusters count as absent.
    /// </summary>
    private static async ValueTask DepthExtentsAsync(NbdExport export, long offset, long end, ExtentList extents)
    {
        var root = export.Device.Root ?? throw new BlockException(Errno.ENOMEDIUM, "No medium");
        for (long pos = offset; pos < end && !extents.Full;)
        {
            var st = await BlockStatusAbove.GetAsync(root, null, pos, end - pos).ConfigureAwait(false);
            long run = Math.Min(st.Length, end - pos);
            extents.Add(run, st.IsAllocated ? (uint)(st.Depth + 1) : 0);
            pos += run;
        }
    }

    /// <summary>qemu:dirty-bitmap:NAME: DIRTY (1) where the bitmap is set, 0 elsewhere, cut at the request's end.</summary>
    private static void BitmapExtents(DirtyBitmap bits, long offset, long end, ExtentList extents)
    {
        end = Math.Min(end, bits.Length);
        for (long pos = offset; pos < end && !extents.Full;)
        {
            long next;
            bool dirty = bits.IsDirty(pos);
            if (dirty)
                next = bits.TryGetNextDirty(pos, end - pos, out long s, out long l) ? Math.Max(pos + 1, s + l) : pos + bits.Granularity;
            else
                next = bits.TryGetNextDirty(pos, end - pos, out long s, out _) ? s : end;
            next = Math.Min(next, end);
            extents.Add(next - pos, dirty ? NbdConstants.StateDirty : 0u);
            pos = next;
        }
    }

    private ValueTask SimpleReplyAsync(ulong cookie, uint error)
    {
        var msg = new byte[SimpleReplyHeader.Size];
        new SimpleReplyHeader(NbdConstants.SimpleReplyMagic, error, cookie).Write(msg);
        return SendAsync(msg);
    }

    /// <summary>Reads and block status get an ERROR chunk (with the message) once structured replies are on; the rest a simple reply.</summary>
    private ValueTask ErrorReplyAsync(RequestHeader h, uint error, string message)
    {
        if (!_structured || h.Command is not (NbdCommand.Read or NbdCommand.BlockStatus))
            return SimpleReplyAsync(h.Cookie, error);
        byte[] text = Encoding.UTF8.GetBytes(message.Length > 1024 ? message[..1024] : message);
        int payload = ErrorChunk.Size + text.Length;
        var msg = new byte[StructuredReplyHeader.Size + payload];
        new StructuredReplyHeader(NbdConstants.StructuredReplyMagic, NbdChunkFlags.Done, NbdChunkType.Error, h.Cookie, (uint)payload).Write(msg);
        new ErrorChunk(error, (ushort)text.Length).Write(msg.AsSpan(StructuredReplyHeader.Size));
        text.CopyTo(msg.AsSpan(StructuredReplyHeader.Size + ErrorChunk.Size));
        return SendAsync(msg);
    }
}
