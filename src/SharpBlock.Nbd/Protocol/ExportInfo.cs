using System.Buffers.Binary;

namespace SharpBlock.Nbd.Protocol;

/// <summary>
/// Size and flags of an export: the body of NBD_INFO_EXPORT after its u16 type, and of the reply to
/// NBD_OPT_EXPORT_NAME (there followed by 124 zero bytes unless NO_ZEROES was agreed).
/// <code>
///  0  u64 size in bytes
///  8  u16 transmission flags
/// </code>
/// </summary>
public readonly record struct ExportInfo(ulong ExportSize, NbdTransmissionFlags Flags)
{
    public const int Size = 10;

    public static ExportInfo Read(ReadOnlySpan<byte> b) => new(
        BinaryPrimitives.ReadUInt64BigEndian(b),
        (NbdTransmissionFlags)BinaryPrimitives.ReadUInt16BigEndian(b[8..]));

    public void Write(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt64BigEndian(b, ExportSize);
        BinaryPrimitives.WriteUInt16BigEndian(b[8..], (ushort)Flags);
    }
}
