using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using SharpBlock.Errors;
using SharpBlock.Nbd.Protocol;

namespace SharpBlock.Nbd.Client;

internal sealed partial class NbdConnection
{
    /// <summary>A request waiting for its reply; reads keep the caller's buffer to copy chunks into.</summary>
    private sealed class PendingRequest
    {
        public PendingRequest(NbdCommand command, long offset, Memory<byte> readBuffer)
        {
            Command = command;
            Offset = offset;
            ReadBuffer = readBuffer;
        }

        public NbdCommand Command { get; }
        public long Offset { get; }
        public Memory<byte> ReadBuffer { get; }
        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public uint Error { get; set; }
        public string? Message { get; set; }
        public BlockStatusDescriptor? FirstExtent { get; set; }
    }

    /// <summary>Sends one request and waits for its whole reply; throws BlockException for an error reply.</summary>
    public async ValueTask<BlockStatusDescriptor?> RequestAsync(NbdCommand command, NbdCommandFlags flags, long offset, uint length,
        Memory<byte> readBuffer = default, ReadOnlyMemory<byte> writeData = default)
    {
        var pending = new PendingRequest(command, offset, readBuffer);
        ulong cookie;
        lock (_pending)
        {
            if (_failure != null)
                throw _failure;
            cookie = ++_nextCookie;
            _pending.Add(cookie, pending);
        }

        byte[] header = ArrayPool<byte>.Shared.Rent(RequestHeader.Size);
        try
        {
            new RequestHeader(NbdConstants.RequestMagic, flags, command, cookie, (ulong)offset, length).Write(header);
            await _writeLock.WaitAsync().ConfigureAwait(false);
            try
            {
                await _stream.WriteAsync(header.AsMemory(0, RequestHeader.Size)).ConfigureAwait(false);
                if (!writeData.IsEmpty)
                    await _stream.WriteAsync(writeData).ConfigureAwait(false);
            }
            finally
            {
                _writeLock.Release();
            }
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
            Fail(Lost(ex.Message));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(header);
        }

        await pending.Done.Task.ConfigureAwait(false);
        if (pending.Error != 0)
        {
            var errno = NbdError.ToErrno(pending.Error);
            string what = pending.Message is { Length: > 0 } m ? m : BlockException.Describe(errno);
            throw new BlockException(errno, $"NBD server '{_server}' failed {command} at {offset}+{length}: {what}");
        }

        return pending.FirstExtent;
    }

    public bool IsBroken
    {
        get
        {
            lock (_pending)
                return _failure != null;
        }
    }

    private BlockException Lost(string why) =>
        new(Errno.EIO, $"NBD connection to '{_server}' lost: {why}");

    /// <summary>Fails every waiting request and all later ones with the same error.</summary>
    private void Fail(BlockException error)
    {
        List<PendingRequest> waiting;
        lock (_pending)
        {
            _failure ??= error;
            waiting = [.. _pending.Values];
            _pending.Clear();
        }

        foreach (var p in waiting)
            p.Done.TrySetException(_failure);
    }

    private async Task ReceiveLoopAsync()
    {
        try
        {
            while (true)
            {
                var result = await _reader.ReadAsync().ConfigureAwait(false);
                var buffer = result.Buffer;
                while (NbdFrameReader.TryReadReply(ref buffer, out var reply))
                    Dispatch(reply);
                _reader.AdvanceTo(buffer.Start, buffer.End);
                if (result.IsCompleted || result.IsCanceled)
                {
                    Fail(Lost("the server closed the connection"));
                    return;
                }
            }
        }
#pragma warning disable CA1031 // Whatever ends the loop, every waiting request must learn of it instead of hanging.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Fail(Lost(ex.Message));
        }
    }

    private void Dispatch(in TransmissionReply reply)
    {
        PendingRequest? p;
        lock (_pending)
            _pending.TryGetValue(reply.Cookie, out p);
        if (p == null)
            throw new NbdProtocolException(NbdProtocolError.UnexpectedReply, $"reply for unknown cookie {reply.Cookie}");
        if (reply.IsSimple)
        {
            p.Error = reply.SimpleError;
            Complete(reply.Cookie, p);
            return;
        }

        var payload = reply.Payload;
        switch (reply.Chunk.Type)
        {
            case NbdChunkType.None:
                break;
            case NbdChunkType.OffsetData:
                {
                    if (payload.Length < 8)
                        throw new NbdProtocolException(NbdProtocolError.Malformed, "short OFFSET_DATA chunk");
                    long at = ReadOffset(payload) - p.Offset;
                    long n = payload.Length - 8;
                    if (p.Command != NbdCommand.Read || at < 0 || at + n > p.ReadBuffer.Length)
                        throw new NbdProtocolException(NbdProtocolError.Malformed, "OFFSET_DATA chunk outside the request");
                    payload.Slice(8).CopyTo(p.ReadBuffer.Span.Slice((int)at, (int)n));
                    break;
                }

            case NbdChunkType.OffsetHole:
                {
                    if (payload.Length != OffsetHole.Size)
                        throw new NbdProtocolException(NbdProtocolError.Malformed, "bad OFFSET_HOLE chunk");
                    Span<byte> b = stackalloc byte[OffsetHole.Size];
                    payload.CopyTo(b);
                    var hole = OffsetHole.Read(b);
                    long at = (long)hole.Offset - p.Offset;
                    if (p.Command != NbdCommand.Read || at < 0 || at + hole.Length > p.ReadBuffer.Length)
                        throw new NbdProtocolException(NbdProtocolError.Malformed, "OFFSET_HOLE chunk outside the request");
                    p.ReadBuffer.Span.Slice((int)at, (int)hole.Length).Clear();
                    break;
                }

            case NbdChunkType.BlockStatus:
                {
                    if (payload.Length < 4 + BlockStatusDescriptor.Size)
                        throw new NbdProtocolException(NbdProtocolError.Malformed, "short BLOCK_STATUS chunk");
                    Span<byte> b = stackalloc byte[4 + BlockStatusDescriptor.Size];
                    payload.Slice(0, b.Length).CopyTo(b);
                    if (BinaryPrimitives.ReadUInt32BigEndian(b) == BaseAllocationId)
                        p.FirstExtent = BlockStatusDescriptor.Read(b[4..]);
                    break;
                }

            case NbdChunkType.Error or NbdChunkType.ErrorOffset:
                {
                    if (payload.Length < ErrorChunk.Size)
                        throw new NbdProtocolException(NbdProtocolError.Malformed, "short error chunk");
                    Span<byte> b = stackalloc byte[ErrorChunk.Size];
                    payload.Slice(0, ErrorChunk.Size).CopyTo(b);
                    var e = ErrorChunk.Read(b);
                    p.Error = e.Error == 0 ? NbdError.EIO : e.Error;
                    int len = (int)Math.Min(e.MessageLength, payload.Length - ErrorChunk.Size);
                    p.Message = Encoding.UTF8.GetString(payload.Slice(ErrorChunk.Size, len).ToArray());
                    break;
                }

            default:
                // An unknown error type still fails the request; an unknown informational chunk is skipped.
                if (reply.Chunk.IsError)
                    p.Error = NbdError.EIO;
                break;
        }

        if (reply.Chunk.IsDone)
            Complete(reply.Cookie, p);
    }

    private static long ReadOffset(ReadOnlySequence<byte> payload)
    {
        Span<byte> b = stackalloc byte[8];
        payload.Slice(0, 8).CopyTo(b);
        return (long)BinaryPrimitives.ReadUInt64BigEndian(b);
    }

    private void Complete(ulong cookie, PendingRequest p)
    {
        lock (_pending)
            _pending.Remove(cookie);
        p.Done.TrySetResult();
    }
}
