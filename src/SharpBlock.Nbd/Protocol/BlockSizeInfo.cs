using System.Buffers.Binary;

namespace SharpBlock.Nbd.Protocol;

/// <summary>
/// The body of NBD_INFO_BLOCK_SIZE after its u16 type.
/// <code>
///  0  u32 minimum block size
///  4  u32 preferred block size
///  8  u32 maximum payload size
/// </code>
/// </summary>
public readonly record struct BlockSizeInfo(uint Minimum, uint Preferred, uint Maximum)
{
    public const int Size = 12;

    public static BlockSizeInfo Read(ReadOnlySpan<byte> b) => new(
        BinaryPrimitives.ReadUInt32BigEndian(b),
        BinaryPrimitives.ReadUInt32BigEndian(b[4..]),
        BinaryPrimitives.ReadUInt32BigEndian(b[8..]));

    public void Write(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt32BigEndian(b, Minimum);
        BinaryPrimitives.WriteUInt32BigEndian(b[4..], Preferred);
        BinaryPrimitives.WriteUInt32BigEndian(b[8..], Maximum);
    }
}
