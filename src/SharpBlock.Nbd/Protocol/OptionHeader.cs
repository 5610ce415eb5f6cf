using System.Buffers.Binary;

namespace SharpBlock.Nbd.Protocol;

/// <summary>
/// A client option during negotiation, followed by Length bytes of data.
/// <code>
///  0  u64 IHAVEOPT
///  8  u32 option
/// 12  u32 length of data
/// </code>
/// </summary>
public readonly record struct OptionHeader(ulong Magic, NbdOption Option, uint Length)
{
    public const int Size = 16;

    public static OptionHeader Read(ReadOnlySpan<byte> b) => new(
        BinaryPrimitives.ReadUInt64BigEndian(b),
        (NbdOption)BinaryPrimitives.ReadUInt32BigEndian(b[8..]),
        BinaryPrimitives.ReadUInt32BigEndian(b[12..]));

    public void Write(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt64BigEndian(b, Magic);
        BinaryPrimitives.WriteUInt32BigEndian(b[8..], (uint)Option);
        BinaryPrimitives.WriteUInt32BigEndian(b[12..], Length);
    }
}
