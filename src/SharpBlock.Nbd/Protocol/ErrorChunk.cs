using System.Buffers.Binary;

namespace SharpBlock.Nbd.Protocol;

/// <summary>
/// The fixed start of an NBD_REPLY_TYPE_ERROR(_OFFSET) payload, followed by a UTF-8 message (and, for
/// ERROR_OFFSET, a u64 offset after it).
/// <code>
///  0  u32 error
///  4  u16 message length
/// </code>
/// </summary>
public readonly record struct ErrorChunk(uint Error, ushort MessageLength)
{
    public const int Size = 6;

    public static ErrorChunk Read(ReadOnlySpan<byte> b) => new(
        BinaryPrimitives.ReadUInt32BigEndian(b),
        BinaryPrimitives.ReadUInt16BigEndian(b[4..]));

    public void Write(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt32BigEndian(b, Error);
        BinaryPrimitives.WriteUInt16BigEndian(b[4..], MessageLength);
    }
}
