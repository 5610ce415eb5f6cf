using System.Buffers.Binary;

namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>
/// The fixed part of one bitmap directory entry; the extra data, then the name (no NUL) follow, and the
/// entry is padded to a multiple of 8 bytes:
/// <code>
///   offset  field                       size
///        0  bitmap_table_offset            8   cluster aligned
///        8  bitmap_table_size              4   entries
///       12  flags                          4   in_use, auto, extra_data_compatible
///       16  type                           1   1: dirty tracking
///       17  granularity_bits               1   9..31
///       18  name_size                      2   1..1023
///       20  extra_data_size                4
/// </code>
/// </summary>
public readonly record struct Qcow2BitmapDirectoryEntry(ulong TableOffset, uint TableSize, uint Flags, byte Type,
    byte GranularityBits, ushort NameSize, uint ExtraDataSize)
{
    public const int TableOffsetOffset = 0;
    public const int TableSizeOffset = TableOffsetOffset + 8;
    public const int FlagsOffset = TableSizeOffset + 4;
    public const int TypeOffset = FlagsOffset + 4;
    public const int GranularityBitsOffset = TypeOffset + 1;
    public const int NameSizeOffset = GranularityBitsOffset + 1;
    public const int ExtraDataSizeOffset = NameSizeOffset + 2;
    public const int Size = ExtraDataSizeOffset + 4;

    /// <summary>Bytes of the whole entry: fixed part, extra data, name, padding.</summary>
    public long TotalSize => (Size + (long)ExtraDataSize + NameSize + 7) & ~7L;

    public static Qcow2BitmapDirectoryEntry Read(ReadOnlySpan<byte> b) => new(
        BinaryPrimitives.ReadUInt64BigEndian(b[TableOffsetOffset..]),
        BinaryPrimitives.ReadUInt32BigEndian(b[TableSizeOffset..]),
        BinaryPrimitives.ReadUInt32BigEndian(b[FlagsOffset..]),
        b[TypeOffset],
        b[GranularityBitsOffset],
        BinaryPrimitives.ReadUInt16BigEndian(b[NameSizeOffset..]),
        BinaryPrimitives.ReadUInt32BigEndian(b[ExtraDataSizeOffset..]));

    public void Write(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt64BigEndian(b[TableOffsetOffset..], TableOffset);
        BinaryPrimitives.WriteUInt32BigEndian(b[TableSizeOffset..], TableSize);
        BinaryPrimitives.WriteUInt32BigEndian(b[FlagsOffset..], Flags);
        b[TypeOffset] = Type;
        b[GranularityBitsOffset] = GranularityBits;
        BinaryPrimitives.WriteUInt16BigEndian(b[NameSizeOffset..], NameSize);
        BinaryPrimitives.WriteUInt32BigEndian(b[ExtraDataSizeOffset..], ExtraDataSize);
    }
}
