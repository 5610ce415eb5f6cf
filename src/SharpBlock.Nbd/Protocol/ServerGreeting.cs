using System.Buffers.Binary;

namespace SharpBlock.Nbd.Protocol;

/// <summary>
/// What a newstyle server sends on connect.
/// <code>
///  0  u64 NBDMAGIC
///  8  u64 IHAVEOPT
/// 16  u16 handshake flags
/// </code>
/// </summary>
public readonly record struct ServerGreeting(ulong Magic, ulong OptMagic, NbdHandshakeFlags Flags)
{
    public const int Size = 18;

    public static ServerGreeting Read(ReadOnlySpan<byte> b) => new(
        BinaryPrimitives.ReadUInt64BigEndian(b),
        BinaryPrimitives.ReadUInt64BigEndian(b[8..]),
        (NbdHandshakeFlags)BinaryPrimitives.ReadUInt16BigEndian(b[16..]));

    public void Write(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt64BigEndian(b, Magic);
        BinaryPrimitives.WriteUInt64BigEndian(b[8..], OptMagic);
        BinaryPrimitives.WriteUInt16BigEndian(b[16..], (ushort)Flags);
    }
}
