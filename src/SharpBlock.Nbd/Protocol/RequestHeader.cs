using System.Buffers.Binary;

namespace SharpBlock.Nbd.Protocol;

/// <summary>
/// A transmission request; a WRITE is followed by Length bytes of data.
/// <code>
///  0  u32 0x25609513
///  4  u16 command flags
///  6  u16 type
///  8  u64 cookie (the client's handle, echoed in the reply)
/// 16  u64 offset
/// 24  u32 length
/// </code>
/// </summary>
public readonly record struct RequestHeader(uint Magic, NbdCommandFlags Flags, NbdCommand Command, ulong Cookie, ulong Offset, uint Length)
{
    public const int Size = 28;

    public static RequestHeader Read(ReadOnlySpan<byte> b) => new(
        BinaryPrimitives.ReadUInt32BigEndian(b),
        (NbdCommandFlags)BinaryPrimitives.ReadUInt16BigEndian(b[4..]),
        (NbdCommand)BinaryPrimitives.ReadUInt16BigEndian(b[6..]),
        BinaryPrimitives.ReadUInt64BigEndian(b[8..]),
        BinaryPrimitives.ReadUInt64BigEndian(b[16..]),
        BinaryPrimitives.ReadUInt32BigEndian(b[24..]));

    public void Write(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt32BigEndian(b, Magic);
        BinaryPrimitives.WriteUInt16BigEndian(b[4..], (ushort)Flags);
        BinaryPrimitives.WriteUInt16BigEndian(b[6..], (ushort)Command);
        BinaryPrimitives.WriteUInt64BigEndian(b[8..], Cookie);
        BinaryPrimitives.WriteUInt64BigEndian(b[16..], Offset);
        BinaryPrimitives.WriteUInt32BigEndian(b[24..], Length);
    }
}
