using System.Buffers.Binary;

namespace SharpBlock.Drivers.Format.Dmg;

/// <summary>
/// The UDIF trailer ("koly"), 512 bytes big-endian at the end of the file; only the fields QEMU uses are kept.
/// <code>
///   0x000 signature "koly"     0x028 rsrc_fork_offset u64   0x030 rsrc_fork_length u64
///   0x0d8 xml_offset u64       0x0e0 xml_length u64         0x1ec sector_count u64
/// </code>
/// </summary>
internal readonly record struct DmgKoly(uint Signature, ulong RsrcForkOffset, ulong RsrcForkLength, ulong XmlOffset, ulong XmlLength, ulong SectorCount)
{
    public const int Size = 512;
    public const int SignatureOffset = 0x000;
    public const int RsrcForkOffsetOffset = 0x028;
    public const int RsrcForkLengthOffset = RsrcForkOffsetOffset + 8;
    public const int XmlOffsetOffset = 0x0d8;
    public const int XmlLengthOffset = XmlOffsetOffset + 8;
    public const int SectorCountOffset = 0x1ec;

    public static DmgKoly Read(ReadOnlySpan<byte> b) => new(
        BinaryPrimitives.ReadUInt32BigEndian(b[SignatureOffset..]),
        BinaryPrimitives.ReadUInt64BigEndian(b[RsrcForkOffsetOffset..]),
        BinaryPrimitives.ReadUInt64BigEndian(b[RsrcForkLengthOffset..]),
        BinaryPrimitives.ReadUInt64BigEndian(b[XmlOffsetOffset..]),
        BinaryPrimitives.ReadUInt64BigEndian(b[XmlLengthOffset..]),
        BinaryPrimitives.ReadUInt64BigEndian(b[SectorCountOffset..]));

    /// <summary>Writes the kept fields (plus version 4 and header size 512) over a zeroed trailer.</summary>
    public void Write(Span<byte> b)
    {
        b[..Size].Clear();
        BinaryPrimitives.WriteUInt32BigEndian(b[SignatureOffset..], Signature);
        BinaryPrimitives.WriteUInt32BigEndian(b[4..], 4);
        BinaryPrimitives.WriteUInt32BigEndian(b[8..], Size);
        BinaryPrimitives.WriteUInt64BigEndian(b[RsrcForkOffsetOffset..], RsrcForkOffset);
        BinaryPrimitives.WriteUInt64BigEndian(b[RsrcForkLengthOffset..], RsrcForkLength);
        BinaryPrimitives.WriteUInt64BigEndian(b[XmlOffsetOffset..], XmlOffset);
        BinaryPrimitives.WriteUInt64BigEndian(b[XmlLengthOffset..], XmlLength);
        BinaryPrimitives.WriteUInt64BigEndian(b[SectorCountOffset..], SectorCount);
    }
}
