using System.Buffers.Binary;

namespace SharpBlock.Nbd.Protocol;

/// <summary>
/// One extent of an NBD_REPLY_TYPE_BLOCK_STATUS chunk (which starts with the u32 context id).
/// <code>
///  0  u32 length of the extent
///  4  u32 status flags (for base:allocation: HOLE, ZERO)
/// </code>
/// </summary>
public readonly record struct BlockStatusDescriptor(uint Length, uint Flags)
{
    public const int Size = 8;

    public static BlockStatusDescriptor Read(ReadOnlySpan<byte> b) => new(
        BinaryPrimitives.ReadUInt32BigEndian(b),
        BinaryPrimitives.ReadUInt32BigEndian(b[4..]));

    public void Write(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt32BigEndian(b, Length);
        BinaryPrimitives.WriteUInt32BigEndian(b[4..], Flags);
    }
}
