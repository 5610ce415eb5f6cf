using System.Buffers.Binary;

namespace SharpBlock.Nbd.Protocol;

/// <summary>
/// A simple reply; without structured replies a successful READ is followed by its data.
/// <code>
///  0  u32 0x67446698
///  4  u32 error (0 or an NBD errno)
///  8  u64 cookie
/// </code>
/// </summary>
public readonly record struct SimpleReplyHeader(uint Magic, uint Error, ulong Cookie)
{
    public const int Size = 16;

    public static SimpleReplyHeader Read(ReadOnlySpan<byte> b) => new(
        BinaryPrimitives.ReadUInt32BigEndian(b),
        BinaryPrimitives.ReadUInt32BigEndian(b[4..]),
        BinaryPrimitives.ReadUInt64BigEndian(b[8..]));

    public void Write(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt32BigEndian(b, Magic);
        BinaryPrimitives.WriteUInt32BigEndian(b[4..], Error);
        BinaryPrimitives.WriteUInt64BigEndian(b[8..], Cookie);
    }
}
