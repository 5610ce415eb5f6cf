using System.Buffers.Binary;

namespace SharpBlock.Drivers.Format.Vmdk;

/// <summary>
/// A stream marker (streamOptimized). A grain marker is the grain's first guest sector and the compressed
/// length, followed directly by the data; a metadata marker has size 0 and a type, and fills a sector.
/// <code>
///  offset size field
///       0    8 val   (grain: guest sector; metadata: sectors of the table that follows)
///       8    4 size  (grain: compressed bytes; metadata: 0)
///      12    4 type  (metadata only: 0 end of stream, 1 grain table, 2 grain directory, 3 footer)
/// </code>
/// </summary>
public readonly record struct VmdkMarker(ulong Value, uint Size, uint Type)
{
    public const int ValueOffset = 0;
    public const int SizeOffset = ValueOffset + 8;
    public const int TypeOffset = SizeOffset + 4;
    public const int MetadataSize = VmdkLayout.SectorSize;

    public static VmdkMarker Read(ReadOnlySpan<byte> b) => new(
        BinaryPrimitives.ReadUInt64LittleEndian(b[ValueOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(b[SizeOffset..]),
        b.Length >= TypeOffset + 4 ? BinaryPrimitives.ReadUInt32LittleEndian(b[TypeOffset..]) : 0);

    /// <summary>Writes a grain marker's 12 bytes (value and size).</summary>
    public void WriteGrain(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(b[ValueOffset..], Value);
        BinaryPrimitives.WriteUInt32LittleEndian(b[SizeOffset..], Size);
    }

    /// <summary>Writes a metadata marker's 16 bytes (the rest of its sector stays zero).</summary>
    public void WriteMetadata(Span<byte> b)
    {
        WriteGrain(b);
        BinaryPrimitives.WriteUInt32LittleEndian(b[TypeOffset..], Type);
    }
}
