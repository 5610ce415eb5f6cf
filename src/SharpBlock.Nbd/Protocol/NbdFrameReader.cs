using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;

namespace SharpBlock.Nbd.Protocol;

/// <summary>
/// Splits the byte stream of either side into frames. Every TryRead returns false when the frame is not
/// complete yet (the sequence is left untouched), advances the sequence past the frame when it is, and
/// throws <see cref="NbdProtocolException"/> for bytes no valid peer sends. Lengths are checked from the
/// header, before waiting for (and so buffering) the payload they announce.
/// </summary>
public static class NbdFrameReader
{
    /// <summary>Server side: the client's 32-bit flags that answer the greeting.</summary>
    public static bool TryReadClientFlags(ref ReadOnlySequence<byte> buffer, out NbdClientFlags flags)
    {
        flags = NbdClientFlags.None;
        if (buffer.Length < 4)
            return false;
        Span<byte> b = stackalloc byte[4];
        buffer.Slice(0, 4).CopyTo(b);
        flags = (NbdClientFlags)BinaryPrimitives.ReadUInt32BigEndian(b);
        buffer = buffer.Slice(4);
        return true;
    }

    /// <summary>Server side: one option with its data.</summary>
    public static bool TryReadOption(ref ReadOnlySequence<byte> buffer, out OptionHeader header, out ReadOnlySequence<byte> data)
    {
        data = default;
        header = default;
        if (buffer.Length < OptionHeader.Size)
            return false;
        Span<byte> b = stackalloc byte[OptionHeader.Size];
        buffer.Slice(0, OptionHeader.Size).CopyTo(b);
        var h = OptionHeader.Read(b);
        if (h.Magic != NbdConstants.IHaveOpt)
            throw new NbdProtocolException(NbdProtocolError.BadMagic, "Option without the IHAVEOPT magic: 0x" + h.Magic.ToString("x16", CultureInfo.InvariantCulture));
        if (h.Length > NbdConstants.MaxOptionLength)
            throw new NbdProtocolException(NbdProtocolError.OptionTooLong, $"Option {(uint)h.Option} of {h.Length} bytes is longer than the {NbdConstants.MaxOptionLength} accepted");
        long total = OptionHeader.Size + (long)h.Length;
        if (buffer.Length < total)
            return false;
        header = h;
        data = buffer.Slice(OptionHeader.Size, h.Length);
        buffer = buffer.Slice(total);
        return true;
    }

    /// <summary>Server side: one request; a WRITE comes with its payload, other commands with none.</summary>
    public static bool TryReadRequest(ref ReadOnlySequence<byte> buffer, out RequestHeader header, out ReadOnlySequence<byte> payload)
    {
        payload = default;
        header = default;
        if (buffer.Length < RequestHeader.Size)
            return false;
        Span<byte> b = stackalloc byte[RequestHeader.Size];
        buffer.Slice(0, RequestHeader.Size).CopyTo(b);
        var h = RequestHeader.Read(b);
        if (h.Magic != NbdConstants.RequestMagic)
            throw new NbdProtocolException(NbdProtocolError.BadMagic, "Request with a bad magic: 0x" + h.Magic.ToString("x8", CultureInfo.InvariantCulture));
        if (h.Command is NbdCommand.Read or NbdCommand.Write && h.Length > NbdConstants.MaxPayload)
            throw new NbdProtocolException(NbdProtocolError.RequestTooLarge, $"Request of {h.Length} bytes is larger than the {NbdConstants.MaxPayload} accepted");
        long payloadLength = h.Command == NbdCommand.Write ? h.Length : 0;
        long total = RequestHeader.Size + payloadLength;
        if (buffer.Length < total)
            return false;
        header = h;
        payload = buffer.Slice(RequestHeader.Size, payloadLength);
        buffer = buffer.Slice(total);
        return true;
    }

    /// <summary>Client side: the server's greeting.</summary>
    public static bool TryReadGreeting(ref ReadOnlySequence<byte> buffer, out ServerGreeting greeting)
    {
        greeting = default;
        if (buffer.Length < ServerGreeting.Size)
            return false;
        Span<byte> b = stackalloc byte[ServerGreeting.Size];
        buffer.Slice(0, ServerGreeting.Size).CopyTo(b);
        var g = ServerGreeting.Read(b);
        if (g.Magic != NbdConstants.NbdMagic)
            throw new NbdProtocolException(NbdProtocolError.BadMagic, "Not an NBD server (no NBDMAGIC)");
        if (g.OptMagic != NbdConstants.IHaveOpt)
            throw new NbdProtocolException(NbdProtocolError.BadMagic, "The NBD server does not speak the newstyle protocol");
        greeting = g;
        buffer = buffer.Slice(ServerGreeting.Size);
        return true;
    }

    /// <summary>Client side: one option reply with its data.</summary>
    public static bool TryReadOptionReply(ref ReadOnlySequence<byte> buffer, out OptionReplyHeader header, out ReadOnlySequence<byte> data)
    {
        data = default;
        header = default;
        if (buffer.Length < OptionReplyHeader.Size)
            return false;
        Span<byte> b = stackalloc byte[OptionReplyHeader.Size];
        buffer.Slice(0, OptionReplyHeader.Size).CopyTo(b);
        var h = OptionReplyHeader.Read(b);
        if (h.Magic != NbdConstants.OptionReplyMagic)
            throw new NbdProtocolException(NbdProtocolError.BadMagic, "Option reply with a bad magic");
        if (h.Length > NbdConstants.MaxOptionLength)
            throw new NbdProtocolException(NbdProtocolError.OptionTooLong, $"Option reply of {h.Length} bytes is too long");
        long total = OptionReplyHeader.Size + (long)h.Length;
        if (buffer.Length < total)
            return false;
        header = h;
        data = buffer.Slice(OptionReplyHeader.Size, h.Length);
        buffer = buffer.Slice(total);
        return true;
    }

    /// <summary>
    /// Client side, with structured replies agreed: one simple reply (never with data then: the server
    /// answers reads with chunks) or one chunk with its payload.
    /// </summary>
    public static bool TryReadReply(ref ReadOnlySequence<byte> buffer, out TransmissionReply reply)
    {
        reply = default;
        if (buffer.Length < 4)
            return false;
        Span<byte> b = stackalloc byte[StructuredReplyHeader.Size];
        buffer.Slice(0, 4).CopyTo(b);
        uint magic = BinaryPrimitives.ReadUInt32BigEndian(b);
        if (magic == NbdConstants.SimpleReplyMagic)
        {
            if (buffer.Length < SimpleReplyHeader.Size)
                return false;
            buffer.Slice(0, SimpleReplyHeader.Size).CopyTo(b);
            var s = SimpleReplyHeader.Read(b);
            reply = new TransmissionReply(s.Cookie, IsSimple: true, s.Error, default, default);
            buffer = buffer.Slice(SimpleReplyHeader.Size);
            return true;
        }

        if (magic != NbdConstants.StructuredReplyMagic)
            throw new NbdProtocolException(NbdProtocolError.BadMagic, "Reply with a bad magic: 0x" + magic.ToString("x8", CultureInfo.InvariantCulture));
        if (buffer.Length < StructuredReplyHeader.Size)
            return false;
        buffer.Slice(0, StructuredReplyHeader.Size).CopyTo(b);
        var h = StructuredReplyHeader.Read(b);
        if (h.Length > NbdConstants.MaxPayload + 64)
            throw new NbdProtocolException(NbdProtocolError.RequestTooLarge, $"Reply chunk of {h.Length} bytes is too large");
        long total = StructuredReplyHeader.Size + (long)h.Length;
        if (buffer.Length < total)
            return false;
        reply = new TransmissionReply(h.Cookie, IsSimple: false, 0, h, buffer.Slice(StructuredReplyHeader.Size, h.Length));
        buffer = buffer.Slice(total);
        return true;
    }
}

/// <summary>One frame a client receives in transmission: a simple reply or a structured chunk with its payload.</summary>
public readonly record struct TransmissionReply(ulong Cookie, bool IsSimple, uint SimpleError, StructuredReplyHeader Chunk, ReadOnlySequence<byte> Payload);
