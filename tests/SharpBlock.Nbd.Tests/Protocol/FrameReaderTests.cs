using System.Buffers;
using System.Buffers.Binary;
using SharpBlock.Nbd.Protocol;

namespace SharpBlock.Nbd.Tests.Protocol;

/// <summary>
/// Every frame is fed whole, as every prefix (which must ask for more data and leave the buffer alone),
/// split in two at every byte, and one byte per segment; each way must give the same frame and consume
/// exactly its bytes, leaving a following frame untouched.
/// </summary>
public class FrameReaderTests
{
    private delegate bool Parser<T>(ref ReadOnlySequence<byte> buffer, out T frame);

    private static readonly byte[] Trailer = [0xde, 0xad];

    private static void CheckAllSplits<T>(byte[] message, Parser<T> parse, Action<T> check)
    {
        // Every prefix: not enough yet, nothing consumed.
        for (int n = 0; n < message.Length; n++)
        {
            var partial = new ReadOnlySequence<byte>(message.AsMemory(0, n));
            Assert.False(parse(ref partial, out _));
            Assert.Equal(n, partial.Length);
        }

        var withTrailer = message.Concat(Trailer).ToArray();
        var ways = new List<ReadOnlySequence<byte>> { new(withTrailer), Segment.Bytewise(withTrailer) };
        for (int i = 1; i < withTrailer.Length; i++)
            ways.Add(Segment.Of(withTrailer.AsMemory(0, i), withTrailer.AsMemory(i)));
        foreach (var seq in ways)
        {
            var buffer = seq;
            Assert.True(parse(ref buffer, out var frame));
            check(frame);
            Assert.Equal(Trailer, buffer.ToArray());
        }

        // Arriving one byte at a time: false until the last byte is there.
        for (int n = 1; n <= message.Length; n++)
        {
            var buffer = Segment.Bytewise(message[..n]);
            Assert.Equal(n == message.Length, parse(ref buffer, out _));
        }
    }

    private static byte[] Option(NbdOption option, byte[] data)
    {
        var b = new byte[OptionHeader.Size + data.Length];
        new OptionHeader(NbdConstants.IHaveOpt, option, (uint)data.Length).Write(b);
        data.CopyTo(b, OptionHeader.Size);
        return b;
    }

    private static byte[] Request(NbdCommand cmd, ulong cookie, ulong offset, uint length, byte[]? payload = null)
    {
        var b = new byte[RequestHeader.Size + (payload?.Length ?? 0)];
        new RequestHeader(NbdConstants.RequestMagic, NbdCommandFlags.Fua, cmd, cookie, offset, length).Write(b);
        payload?.CopyTo(b, RequestHeader.Size);
        return b;
    }

    [Fact]
    public void Client_flags()
    {
        var msg = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(msg, 3);
        CheckAllSplits<NbdClientFlags>(msg, NbdFrameReader.TryReadClientFlags,
            f => Assert.Equal(NbdClientFlags.FixedNewstyle | NbdClientFlags.NoZeroes, f));
    }

    [Fact]
    public void Options_with_and_without_data()
    {
        CheckAllSplits<(OptionHeader, byte[])>(Option(NbdOption.StructuredReply, []),
            (ref ReadOnlySequence<byte> b, out (OptionHeader, byte[]) r) =>
            {
                bool ok = NbdFrameReader.TryReadOption(ref b, out var h, out var d);
                r = (h, d.ToArray());
                return ok;
            },
            r =>
            {
                Assert.Equal(NbdOption.StructuredReply, r.Item1.Option);
                Assert.Empty(r.Item2);
            });

        var go = RawNbdClient.InfoRequest("disk0", NbdInfoType.BlockSize, NbdInfoType.Name);
        CheckAllSplits<(OptionHeader, byte[])>(Option(NbdOption.Go, go),
            (ref ReadOnlySequence<byte> b, out (OptionHeader, byte[]) r) =>
            {
                bool ok = NbdFrameReader.TryReadOption(ref b, out var h, out var d);
                r = (h, d.ToArray());
                return ok;
            },
            r =>
            {
                Assert.Equal(NbdOption.Go, r.Item1.Option);
                Assert.Equal(go, r.Item2);
            });
    }

    [Fact]
    public void Requests_read_and_write_with_payload()
    {
        CheckAllSplits<(RequestHeader, byte[])>(Request(NbdCommand.Read, 7, 4096, 512),
            (ref ReadOnlySequence<byte> b, out (RequestHeader, byte[]) r) =>
            {
                bool ok = NbdFrameReader.TryReadRequest(ref b, out var h, out var d);
                r = (h, d.ToArray());
                return ok;
            },
            r =>
            {
                Assert.Equal(new RequestHeader(NbdConstants.RequestMagic, NbdCommandFlags.Fua, NbdCommand.Read, 7, 4096, 512), r.Item1);
                Assert.Empty(r.Item2);
            });

        var data = Enumerable.Range(0, 37).Select(i => (byte)i).ToArray();
        CheckAllSplits<(RequestHeader, byte[])>(Request(NbdCommand.Write, ulong.MaxValue, 1, 37, data),
            (ref ReadOnlySequence<byte> b, out (RequestHeader, byte[]) r) =>
            {
                bool ok = NbdFrameReader.TryReadRequest(ref b, out var h, out var d);
                r = (h, d.ToArray());
                return ok;
            },
            r =>
            {
                Assert.Equal(NbdCommand.Write, r.Item1.Command);
                Assert.Equal(ulong.MaxValue, r.Item1.Cookie);
                Assert.Equal(data, r.Item2);
            });
    }

    [Fact]
    public void Greeting_and_option_replies()
    {
        var g = new byte[ServerGreeting.Size];
        new ServerGreeting(NbdConstants.NbdMagic, NbdConstants.IHaveOpt, NbdHandshakeFlags.FixedNewstyle | NbdHandshakeFlags.NoZeroes).Write(g);
        CheckAllSplits<ServerGreeting>(g, NbdFrameReader.TryReadGreeting,
            r => Assert.Equal(NbdHandshakeFlags.FixedNewstyle | NbdHandshakeFlags.NoZeroes, r.Flags));

        byte[] body = [0, 3, 0, 0, 0, 1, 0, 0, 16, 0, 2, 0, 0, 0];
        var reply = new byte[OptionReplyHeader.Size + body.Length];
        new OptionReplyHeader(NbdConstants.OptionReplyMagic, NbdOption.Go, NbdOptionReplyType.Info, (uint)body.Length).Write(reply);
        body.CopyTo(reply, OptionReplyHeader.Size);
        CheckAllSplits<(OptionReplyHeader, byte[])>(reply,
            (ref ReadOnlySequence<byte> b, out (OptionReplyHeader, byte[]) r) =>
            {
                bool ok = NbdFrameReader.TryReadOptionReply(ref b, out var h, out var d);
                r = (h, d.ToArray());
                return ok;
            },
            r =>
            {
                Assert.Equal(NbdOptionReplyType.Info, r.Item1.Type);
                Assert.Equal(body, r.Item2);
            });
    }

    [Fact]
    public void Simple_replies_and_chunks()
    {
        var simple = new byte[SimpleReplyHeader.Size];
        new SimpleReplyHeader(NbdConstants.SimpleReplyMagic, NbdError.EPERM, 42).Write(simple);
        CheckAllSplits<TransmissionReply>(simple, NbdFrameReader.TryReadReply, r =>
        {
            Assert.True(r.IsSimple);
            Assert.Equal(42UL, r.Cookie);
            Assert.Equal(NbdError.EPERM, r.SimpleError);
        });

        var chunk = new byte[StructuredReplyHeader.Size + 8 + 5];
        new StructuredReplyHeader(NbdConstants.StructuredReplyMagic, NbdChunkFlags.Done, NbdChunkType.OffsetData, 9, 13).Write(chunk);
        BinaryPrimitives.WriteUInt64BigEndian(chunk.AsSpan(StructuredReplyHeader.Size), 1024);
        "hello"u8.CopyTo(chunk.AsSpan(StructuredReplyHeader.Size + 8));
        CheckAllSplits<TransmissionReply>(chunk, NbdFrameReader.TryReadReply, r =>
        {
            Assert.False(r.IsSimple);
            Assert.True(r.Chunk.IsDone);
            Assert.Equal(NbdChunkType.OffsetData, r.Chunk.Type);
            Assert.Equal("hello"u8.ToArray(), r.Payload.Slice(8).ToArray());
        });
    }

    [Fact]
    public void Bad_magic_and_oversized_frames_throw_before_buffering()
    {
        var bad = Request(NbdCommand.Read, 1, 0, 512);
        bad[0] ^= 0xff;
        var seq = new ReadOnlySequence<byte>(bad);
        var ex = Assert.Throws<NbdProtocolException>(() => NbdFrameReader.TryReadRequest(ref seq, out _, out _));
        Assert.Equal(NbdProtocolError.BadMagic, ex.Error);

        // Only the 28-byte header of a 33 MiB write is present: refused now, not after 33 MiB arrive.
        var big = Request(NbdCommand.Write, 1, 0, (32 << 20) + 1);
        seq = new ReadOnlySequence<byte>(big);
        ex = Assert.Throws<NbdProtocolException>(() => NbdFrameReader.TryReadRequest(ref seq, out _, out _));
        Assert.Equal(NbdProtocolError.RequestTooLarge, ex.Error);

        // A trim of 1 GiB has no payload and is fine.
        var trim = Request(NbdCommand.Trim, 1, 0, 1 << 30);
        seq = new ReadOnlySequence<byte>(trim);
        Assert.True(NbdFrameReader.TryReadRequest(ref seq, out var h, out _));
        Assert.Equal(1u << 30, h.Length);

        var opt = Option(NbdOption.Go, []);
        BinaryPrimitives.WriteUInt32BigEndian(opt.AsSpan(12), 1 << 30);
        seq = new ReadOnlySequence<byte>(opt);
        ex = Assert.Throws<NbdProtocolException>(() => NbdFrameReader.TryReadOption(ref seq, out _, out _));
        Assert.Equal(NbdProtocolError.OptionTooLong, ex.Error);
    }
}
