using System.Buffers.Binary;

namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>
/// The bitmaps header extension (type 0x23852875), valid only while the autoclear bit 0 is set:
/// <code>
///   offset  field                       size
///        0  nb_bitmaps                     4
///        4  reserved (zero)                4
///        8  bitmap_directory_size          8   bytes
///       16  bitmap_directory_offset        8   cluster aligned
/// </code>
/// </summary>
public readonly record struct Qcow2BitmapsExtension(uint Count, ulong DirectorySize, ulong DirectoryOffset)
{
    public const int CountOffset = 0;
    public const int ReservedOffset = CountOffset + 4;
    public const int DirectorySizeOffset = ReservedOffset + 4;
    public const int DirectoryOffsetOffset = DirectorySizeOffset + 8;
    public const int Size = DirectoryOffsetOffset + 8;

    public static Qcow2BitmapsExtension Read(ReadOnlySpan<byte> b) => new(
        BinaryPrimitives.ReadUInt32BigEndian(b[CountOffset..]),
        BinaryPrimitives.ReadUInt64BigEndian(b[DirectorySizeOffset..]),
        BinaryPrimitives.ReadUInt64BigEndian(b[DirectoryOffsetOffset..]));

    public void Write(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt32BigEndian(b[CountOffset..], Count);
        BinaryPrimitives.WriteUInt32BigEndian(b[ReservedOffset..], 0);
        BinaryPrimitives.WriteUInt64BigEndian(b[DirectorySizeOffset..], DirectorySize);
        BinaryPrimitives.WriteUInt64BigEndian(b[DirectoryOffsetOffset..], DirectoryOffset);
    }
}
