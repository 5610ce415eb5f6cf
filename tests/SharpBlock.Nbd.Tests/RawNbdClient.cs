using System.Buffers.Binary;
using System.Net.Sockets;
using SharpBlock.Nbd.Protocol;

namespace SharpBlock.Nbd.Tests;

/// <summary>
/// A deliberately plain NBD client for tests: it writes the bytes a test asks for and reads frames back
/// exactly as they are on the wire, so tests can check every field and send what no real client would.
/// </summary>
public sealed class RawNbdClient : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;

    private RawNbdClient(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
    }

    public static async Task<RawNbdClient> ConnectAsync(string socketPath)
    {
        var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await s.ConnectAsync(new UnixDomainSocketEndPoint(socketPath));
        return new RawNbdClient(s);
    }

    /// <summary>Greeting, client flags, structured replies and base:allocation (optional), then GO.</summary>
    public static async Task<(RawNbdClient Client, ExportInfo Info)> OpenAsync(string socketPath, string export, bool structured = true, bool meta = true)
    {
        var c = await ConnectAsync(socketPath);
        var g = await c.ReadGreetingAsync();
        Assert.Equal(NbdConstants.NbdMagic, g.Magic);
        await c.SendClientFlagsAsync(NbdClientFlags.FixedNewstyle | NbdClientFlags.NoZeroes);
        if (structured)
        {
            await c.SendOptionAsync(NbdOption.StructuredReply, []);
            Assert.Equal(NbdOptionReplyType.Ack, (await c.ReadOptionReplyAsync()).Header.Type);
        }

        if (meta)
        {
            await c.SendOptionAsync(NbdOption.SetMetaContext, MetaContextRequest(export, NbdConstants.BaseAllocation));
            var r = await c.ReadOptionReplyAsync();
            Assert.Equal(NbdOptionReplyType.MetaContext, r.Header.Type);
            Assert.Equal(NbdOptionReplyType.Ack, (await c.ReadOptionReplyAsync()).Header.Type);
        }

        await c.SendOptionAsync(NbdOption.Go, InfoRequest(export));
        ExportInfo info = default;
        while (true)
        {
            var r = await c.ReadOptionReplyAsync();
            if (r.Header.Type == NbdOptionReplyType.Ack)
                break;
            Assert.Equal(NbdOptionReplyType.Info, r.Header.Type);
            if (BinaryPrimitives.ReadUInt16BigEndian(r.Data) == (ushort)NbdInfoType.Export)
                info = ExportInfo.Read(r.Data.AsSpan(2));
        }

        return (c, info);
    }

    public static byte[] InfoRequest(string export, params NbdInfoType[] infos) => NbdOptionPayloads.Info(export, infos);

    public static byte[] MetaContextRequest(string export, params string[] queries) => NbdOptionPayloads.MetaContext(export, queries);

    public async Task SendAsync(byte[] bytes)
    {
        await _stream.WriteAsync(bytes);
        await _stream.FlushAsync();
    }

    public async Task<byte[]> ReadExactlyAsync(int n, int timeoutMs = 10000)
    {
        var b = new byte[n];
        using var cts = new CancellationTokenSource(timeoutMs);
        await _stream.ReadExactlyAsync(b, cts.Token);
        return b;
    }

    /// <summary>True when the server closed the connection (read returns 0 or the socket resets).</summary>
    public async Task<bool> IsClosedAsync(int timeoutMs = 10000)
    {
        var b = new byte[1];
        using var cts = new CancellationTokenSource(timeoutMs);
        try
        {
            while (true)
            {
                int n = await _stream.ReadAsync(b, cts.Token);
                if (n == 0)
                    return true;
            }
        }
        catch (IOException)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    public async Task<ServerGreeting> ReadGreetingAsync() => ServerGreeting.Read(await ReadExactlyAsync(ServerGreeting.Size));

    public Task SendClientFlagsAsync(NbdClientFlags flags)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, (uint)flags);
        return SendAsync(b);
    }

    public Task SendOptionAsync(NbdOption option, byte[] data)
    {
        var b = new byte[OptionHeader.Size + data.Length];
        new OptionHeader(NbdConstants.IHaveOpt, option, (uint)data.Length).Write(b);
        data.CopyTo(b, OptionHeader.Size);
        return SendAsync(b);
    }

    public async Task<(OptionReplyHeader Header, byte[] Data)> ReadOptionReplyAsync()
    {
        var h = OptionReplyHeader.Read(await ReadExactlyAsync(OptionReplyHeader.Size));
        Assert.Equal(NbdConstants.OptionReplyMagic, h.Magic);
        return (h, await ReadExactlyAsync((int)h.Length));
    }

    public Task SendRequestAsync(NbdCommand command, ulong cookie, ulong offset, uint length, NbdCommandFlags flags = NbdCommandFlags.None, byte[]? data = null)
    {
        var b = new byte[RequestHeader.Size + (data?.Length ?? 0)];
        new RequestHeader(NbdConstants.RequestMagic, flags, command, cookie, offset, length).Write(b);
        data?.CopyTo(b, RequestHeader.Size);
        return SendAsync(b);
    }

    /// <summary>One reply frame: a simple reply (Chunk null) or a structured chunk with its payload.</summary>
    public async Task<Reply> ReadReplyAsync()
    {
        var m = await ReadExactlyAsync(4);
        uint magic = BinaryPrimitives.ReadUInt32BigEndian(m);
        if (magic == NbdConstants.SimpleReplyMagic)
        {
            var rest = await ReadExactlyAsync(SimpleReplyHeader.Size - 4);
            var s = SimpleReplyHeader.Read([.. m, .. rest]);
            return new Reply(s.Cookie, s.Error, null, []);
        }

        Assert.Equal(NbdConstants.StructuredReplyMagic, magic);
        var r2 = await ReadExactlyAsync(StructuredReplyHeader.Size - 4);
        var h = StructuredReplyHeader.Read([.. m, .. r2]);
        var payload = await ReadExactlyAsync((int)h.Length);
        uint error = 0;
        if (h.IsError)
            error = ErrorChunk.Read(payload).Error;
        return new Reply(h.Cookie, error, h, payload);
    }

    /// <summary>Reads a whole structured read reply into a buffer (holes as zeros); returns the chunk types seen.</summary>
    public async Task<(byte[] Data, List<NbdChunkType> Chunks)> ReadStructuredReadAsync(ulong cookie, ulong offset, int length)
    {
        var data = new byte[length];
        var types = new List<NbdChunkType>();
        while (true)
        {
            var r = await ReadReplyAsync();
            Assert.Equal(cookie, r.Cookie);
            Assert.NotNull(r.Chunk);
            var c = r.Chunk.Value;
            types.Add(c.Type);
            if (c.Type == NbdChunkType.OffsetData)
            {
                ulong at = BinaryPrimitives.ReadUInt64BigEndian(r.Payload) - offset;
                r.Payload.AsSpan(8).CopyTo(data.AsSpan((int)at));
            }
            else if (c.Type == NbdChunkType.OffsetHole)
            {
                var hole = OffsetHole.Read(r.Payload);
                data.AsSpan((int)(hole.Offset - offset), (int)hole.Length).Clear();
            }
            else if (c.IsError)
            {
                throw new InvalidOperationException("error chunk " + ErrorChunk.Read(r.Payload).Error);
            }

            if (c.IsDone)
                return (data, types);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stream.DisposeAsync();
        _socket.Dispose();
    }
}

public sealed record Reply(ulong Cookie, uint Error, StructuredReplyHeader? Chunk, byte[] Payload);
