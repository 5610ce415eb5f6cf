using System.Buffers.Binary;

namespace SharpBlock.Nbd.Protocol;

/// <summary>
/// One chunk of a structured reply, followed by Length bytes of chunk payload.
/// <code>
///  0  u32 0x668e33ef
///  4  u16 flags (DONE on the last chunk)
///  6  u16 chunk type
///  8  u64 cookie
/// 16  u32 length of payload
/// </code>
/// </summary>
public readonly record struct StructuredReplyHeader(uint Magic, NbdChunkFlags Flags, NbdChunkType Type, ulong Cookie, uint Length)
{
    public const int Size = 20;

    public bool IsDone => (Flags & NbdChunkFlags.Done) != 0;

    public bool IsError => ((ushort)Type & 0x8000) != 0;

    public static StructuredReplyHeader Read(ReadOnlySpan<byte> b) => new(
        BinaryPrimitives.ReadUInt32BigEndian(b),
        (NbdChunkFlags)BinaryPrimitives.ReadUInt16BigEndian(b[4..]),
        (NbdChunkType)BinaryPrimitives.ReadUInt16BigEndian(b[6..]),
        BinaryPrimitives.ReadUInt64BigEndian(b[8..]),
        BinaryPrimitives.ReadUInt32BigEndian(b[16..]));

    public void Write(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt32BigEndian(b, Magic);
        BinaryPrimitives.WriteUInt16BigEndian(b[4..], (ushort)Flags);
        BinaryPrimitives.WriteUInt16BigEndian(b[6..], (ushort)Type);
        BinaryPrimitives.WriteUInt64BigEndian(b[8..], Cookie);
        BinaryPrimitives.WriteUInt32BigEndian(b[16..], Length);
    }
}
