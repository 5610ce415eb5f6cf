using System.Buffers.Binary;

namespace SharpBlock.Nbd.Protocol;

/// <summary>
/// The payload of an NBD_REPLY_TYPE_OFFSET_HOLE chunk: a range of the read that is all zeros.
/// <code>
///  0  u64 offset
///  8  u32 hole size
/// </code>
/// </summary>
public readonly record struct OffsetHole(ulong Offset, uint Length)
{
    public const int Size = 12;

    public static OffsetHole Read(ReadOnlySpan<byte> b) => new(
        BinaryPrimitives.ReadUInt64BigEndian(b),
        BinaryPrimitives.ReadUInt32BigEndian(b[8..]));

    public void Write(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt64BigEndian(b, Offset);
        BinaryPrimitives.WriteUInt32BigEndian(b[8..], Length);
    }
}
