using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Text;
using SharpBlock.Errors;
using SharpBlock.Nbd.Protocol;

namespace SharpBlock.Nbd.Client;

/// <summary>
/// One negotiated client connection in transmission: requests are sent under a write lock with a fresh
/// cookie each, and one receive loop matches replies to them by cookie, so any number may be in flight and
/// the server may answer in any order. When the connection breaks every waiting and later request fails
/// with EIO naming the server.
/// </summary>
internal sealed partial class NbdConnection : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly PipeReader _reader;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly Dictionary<ulong, PendingRequest> _pending = [];
    private readonly string _server;
    private ulong _nextCookie;
    private Task? _receiveLoop;
    private BlockException? _failure;

    private NbdConnection(Socket socket, string server)
    {
        _socket = socket;
        _server = server;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _reader = PipeReader.Create(_stream, new StreamPipeReaderOptions(bufferSize: 256 << 10, minimumReadSize: 64 << 10, leaveOpen: true));
    }

    public string ExportName { get; private set; } = "";

    public long Size { get; private set; }

    public NbdTransmissionFlags Flags { get; private set; }

    public int MaxPayload { get; private set; } = NbdConstants.MaxPayload;

    /// <summary>The id the server gave base:allocation, or null when it has no block status for us.</summary>
    public uint? BaseAllocationId { get; private set; }

    public bool Has(NbdTransmissionFlags flag) => (Flags & flag) != 0;

    /// <summary>Connects and negotiates: fixed newstyle, structured replies, base:allocation, then GO.</summary>
    public static async Task<NbdConnection> ConnectAsync(EndPoint endpoint, string server, string exportName, CancellationToken cancellationToken)
    {
        var socket = endpoint is UnixDomainSocketEndPoint
            ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
            : new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await socket.ConnectAsync(endpoint, cancellationToken).ConfigureAwait(false);
            if (socket.AddressFamily != AddressFamily.Unix)
                socket.NoDelay = true;
        }
        catch (SocketException ex)
        {
            socket.Dispose();
            var errno = ex.SocketErrorCode == SocketError.ConnectionRefused ? Errno.ECONNREFUSED : Errno.EIO;
            throw new BlockException(errno, $"Failed to connect to '{server}': {ex.Message}", ex);
        }

        var c = new NbdConnection(socket, server);
        try
        {
            await c.NegotiateAsync(exportName, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            await c.DisposeAsync().ConfigureAwait(false);
            if (ex is BlockException)
                throw;
            throw new BlockException(Errno.EIO, $"NBD negotiation with '{server}' failed: {ex.Message}", ex);
        }

        c._receiveLoop = Task.Run(c.ReceiveLoopAsync, CancellationToken.None);
        return c;
    }

    private async ValueTask NegotiateAsync(string exportName, CancellationToken ct)
    {
        ExportName = exportName;
        var greeting = await ReadFrameAsync(static (ref ReadOnlySequence<byte> b, out ServerGreeting g) => NbdFrameReader.TryReadGreeting(ref b, out g), ct).ConfigureAwait(false);
        if ((greeting.Flags & NbdHandshakeFlags.FixedNewstyle) == 0)
            throw new BlockException(Errno.EINVAL, $"NBD server '{_server}' does not support the fixed newstyle protocol");
        bool noZeroes = (greeting.Flags & NbdHandshakeFlags.NoZeroes) != 0;
        var flags = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(flags, (uint)(NbdClientFlags.FixedNewstyle | (noZeroes ? NbdClientFlags.NoZeroes : 0)));
        await _stream.WriteAsync(flags, ct).ConfigureAwait(false);

        // Structured replies are required: they are what lets a read report holes and errors per chunk.
        await SendOptionAsync(NbdOption.StructuredReply, [], ct).ConfigureAwait(false);
        var (sr, srData) = await ReadOptionReplyAsync(NbdOption.StructuredReply, ct).ConfigureAwait(false);
        if (sr != NbdOptionReplyType.Ack)
            throw new BlockException(Errno.EOPNOTSUPP, $"NBD server '{_server}' does not support structured replies: {Message(srData)}");

        byte[] name = Encoding.UTF8.GetBytes(exportName);
        byte[] ctxName = Encoding.UTF8.GetBytes(NbdConstants.BaseAllocation);
        var meta = new byte[4 + name.Length + 4 + 4 + ctxName.Length];
        BinaryPrimitives.WriteUInt32BigEndian(meta, (uint)name.Length);
        name.CopyTo(meta, 4);
        BinaryPrimitives.WriteUInt32BigEndian(meta.AsSpan(4 + name.Length), 1);
        BinaryPrimitives.WriteUInt32BigEndian(meta.AsSpan(8 + name.Length), (uint)ctxName.Length);
        ctxName.CopyTo(meta, 12 + name.Length);
        await SendOptionAsync(NbdOption.SetMetaContext, meta, ct).ConfigureAwait(false);
        while (true)
        {
            var (t, d) = await ReadOptionReplyAsync(NbdOption.SetMetaContext, ct).ConfigureAwait(false);
            if (t == NbdOptionReplyType.MetaContext && d.Length >= 4
                && Encoding.UTF8.GetString(d, 4, d.Length - 4) == NbdConstants.BaseAllocation)
                BaseAllocationId = BinaryPrimitives.ReadUInt32BigEndian(d);
            if (t != NbdOptionReplyType.MetaContext)
                break;
        }

        var go = new byte[4 + name.Length + 2 + 2];
        BinaryPrimitives.WriteUInt32BigEndian(go, (uint)name.Length);
        name.CopyTo(go, 4);
        BinaryPrimitives.WriteUInt16BigEndian(go.AsSpan(4 + name.Length), 1);
        BinaryPrimitives.WriteUInt16BigEndian(go.AsSpan(6 + name.Length), (ushort)NbdInfoType.BlockSize);
        await SendOptionAsync(NbdOption.Go, go, ct).ConfigureAwait(false);
        bool haveExport = false;
        while (true)
        {
            var (t, d) = await ReadOptionReplyAsync(NbdOption.Go, ct).ConfigureAwait(false);
            if (t == NbdOptionReplyType.Ack)
                break;
            if (t == NbdOptionReplyType.Info && d.Length >= 2)
            {
                var it = (NbdInfoType)BinaryPrimitives.ReadUInt16BigEndian(d);
                if (it == NbdInfoType.Export && d.Length >= 2 + ExportInfo.Size)
                {
                    var info = ExportInfo.Read(d.AsSpan(2));
                    Size = checked((long)info.ExportSize);
                    Flags = info.Flags;
                    haveExport = true;
                }
                else if (it == NbdInfoType.BlockSize && d.Length >= 2 + BlockSizeInfo.Size)
                {
                    var bs = BlockSizeInfo.Read(d.AsSpan(2));
                    if (bs.Maximum > 0)
                        MaxPayload = (int)Math.Min(bs.Maximum, (uint)NbdConstants.MaxPayload);
                }

                continue;
            }

            if (t == NbdOptionReplyType.ErrUnknown)
                throw new BlockException(Errno.ENOENT, $"Requested export '{exportName}' not available on '{_server}': {Message(d)}");
            if ((uint)t >= 0x80000000)
                throw new BlockException(Errno.EINVAL, $"NBD server '{_server}' refused export '{exportName}': {Message(d)}");
        }

        if (!haveExport)
            throw new BlockException(Errno.EINVAL, $"NBD server '{_server}' sent no size for export '{exportName}'");
    }

    private static string Message(byte[] data) => data.Length == 0 ? "no reason given" : Encoding.UTF8.GetString(data);

    private async ValueTask SendOptionAsync(NbdOption option, byte[] data, CancellationToken ct)
    {
        var msg = new byte[OptionHeader.Size + data.Length];
        new OptionHeader(NbdConstants.IHaveOpt, option, (uint)data.Length).Write(msg);
        data.CopyTo(msg, OptionHeader.Size);
        await _stream.WriteAsync(msg, ct).ConfigureAwait(false);
    }

    private async ValueTask<(NbdOptionReplyType Type, byte[] Data)> ReadOptionReplyAsync(NbdOption option, CancellationToken ct)
    {
        var (h, data) = await ReadFrameAsync(static (ref ReadOnlySequence<byte> b, out (OptionReplyHeader, byte[]) r) =>
        {
            if (NbdFrameReader.TryReadOptionReply(ref b, out var h, out var d))
            {
                r = (h, d.ToArray());
                return true;
            }

            r = default;
            return false;
        }, ct).ConfigureAwait(false);
        if (h.Option != option)
            throw new NbdProtocolException(NbdProtocolError.UnexpectedReply, $"Reply to option {(uint)h.Option} while waiting for {(uint)option}");
        return (h.Type, data);
    }

    private delegate bool FrameParser<T>(ref ReadOnlySequence<byte> buffer, out T frame);

    private async ValueTask<T> ReadFrameAsync<T>(FrameParser<T> parse, CancellationToken ct)
    {
        while (true)
        {
            var result = await _reader.ReadAsync(ct).ConfigureAwait(false);
            var buffer = result.Buffer;
            if (parse(ref buffer, out var frame))
            {
                _reader.AdvanceTo(buffer.Start);
                return frame;
            }

            if (result.IsCompleted || result.IsCanceled)
                throw new EndOfStreamException("the server closed the connection");
            _reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_receiveLoop != null && _failure == null)
        {
            // A polite goodbye: the server finishes what is in flight and closes.
            try
            {
                var msg = new byte[RequestHeader.Size];
                new RequestHeader(NbdConstants.RequestMagic, NbdCommandFlags.None, NbdCommand.Disc, 0, 0, 0).Write(msg);
                await _writeLock.WaitAsync().ConfigureAwait(false);
                try
                {
                    await _stream.WriteAsync(msg).ConfigureAwait(false);
                }
                finally
                {
                    _writeLock.Release();
                }
            }
            catch (Exception ex) when (ex is IOException or ObjectDisposedException)
            {
            }
        }

        Fail(new BlockException(Errno.ESHUTDOWN, $"NBD connection to '{_server}' was closed"));
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }

        _reader.CancelPendingRead();
        if (_receiveLoop != null)
            await _receiveLoop.ConfigureAwait(false);
        await _reader.CompleteAsync().ConfigureAwait(false);
        await _stream.DisposeAsync().ConfigureAwait(false);
    }
}
