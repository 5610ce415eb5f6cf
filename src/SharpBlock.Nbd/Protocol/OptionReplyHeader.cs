using System.Buffers.Binary;

namespace SharpBlock.Nbd.Protocol;

/// <summary>
/// The server's answer to an option, followed by Length bytes of data.
/// <code>
///  0  u64 0x3e889045565a9
///  8  u32 option being answered
/// 12  u32 reply type
/// 16  u32 length of data
/// </code>
/// </summary>
public readonly record struct OptionReplyHeader(ulong Magic, NbdOption Option, NbdOptionReplyType Type, uint Length)
{
    public const int Size = 20;

    public bool IsError => ((uint)Type & 0x80000000) != 0;

    public static OptionReplyHeader Read(ReadOnlySpan<byte> b) => new(
        BinaryPrimitives.ReadUInt64BigEndian(b),
        (NbdOption)BinaryPrimitives.ReadUInt32BigEndian(b[8..]),
        (NbdOptionReplyType)BinaryPrimitives.ReadUInt32BigEndian(b[12..]),
        BinaryPrimitives.ReadUInt32BigEndian(b[16..]));

    public void Write(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt64BigEndian(b, Magic);
        BinaryPrimitives.WriteUInt32BigEndian(b[8..], (uint)Option);
        BinaryPrimitives.WriteUInt32BigEndian(b[12..], (uint)Type);
        BinaryPrimitives.WriteUInt32BigEndian(b[16..], Length);
    }
}
