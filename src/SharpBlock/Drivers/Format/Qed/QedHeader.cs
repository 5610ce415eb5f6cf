using System.Buffers.Binary;

namespace SharpBlock.Drivers.Format.Qed;

/// <summary>
/// The QED header at byte 0 of the image, every field little-endian:
/// <code>
///   0x00  magic                     "QED\0"
///   0x04  cluster_size              bytes, a power of two in [4 KiB, 64 MiB]
///   0x08  table_size                clusters per L1/L2 table, a power of two in [1, 16]
///   0x0c  header_size               clusters reserved for the header (and backing name)
///   0x10  features (u64)            backing file, need check, raw backing
///   0x18  compat_features (u64)
///   0x20  autoclear_features (u64)
///   0x28  l1_table_offset (u64)
///   0x30  image_size (u64)          virtual size in bytes
///   0x38  backing_filename_offset   byte offset of the name, inside the header clusters
///   0x3c  backing_filename_size
/// </code>
/// </summary>
public readonly record struct QedHeader
{
    public const int Size = 64;

    public uint Magic { get; init; }
    public uint ClusterSize { get; init; }
    public uint TableSize { get; init; }
    public uint HeaderSize { get; init; }
    public ulong Features { get; init; }
    public ulong CompatFeatures { get; init; }
    public ulong AutoclearFeatures { get; init; }
    public ulong L1TableOffset { get; init; }
    public ulong ImageSize { get; init; }
    public uint BackingFilenameOffset { get; init; }
    public uint BackingFilenameSize { get; init; }

    public static QedHeader Read(ReadOnlySpan<byte> s) => new()
    {
        Magic = BinaryPrimitives.ReadUInt32LittleEndian(s),
        ClusterSize = BinaryPrimitives.ReadUInt32LittleEndian(s[0x04..]),
        TableSize = BinaryPrimitives.ReadUInt32LittleEndian(s[0x08..]),
        HeaderSize = BinaryPrimitives.ReadUInt32LittleEndian(s[0x0c..]),
        Features = BinaryPrimitives.ReadUInt64LittleEndian(s[0x10..]),
        CompatFeatures = BinaryPrimitives.ReadUInt64LittleEndian(s[0x18..]),
        AutoclearFeatures = BinaryPrimitives.ReadUInt64LittleEndian(s[0x20..]),
        L1TableOffset = BinaryPrimitives.ReadUInt64LittleEndian(s[0x28..]),
        ImageSize = BinaryPrimitives.ReadUInt64LittleEndian(s[0x30..]),
        BackingFilenameOffset = BinaryPrimitives.ReadUInt32LittleEndian(s[0x38..]),
        BackingFilenameSize = BinaryPrimitives.ReadUInt32LittleEndian(s[0x3c..]),
    };

    public void Write(Span<byte> s)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(s, Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(s[0x04..], ClusterSize);
        BinaryPrimitives.WriteUInt32LittleEndian(s[0x08..], TableSize);
        BinaryPrimitives.WriteUInt32LittleEndian(s[0x0c..], HeaderSize);
        BinaryPrimitives.WriteUInt64LittleEndian(s[0x10..], Features);
        BinaryPrimitives.WriteUInt64LittleEndian(s[0x18..], CompatFeatures);
        BinaryPrimitives.WriteUInt64LittleEndian(s[0x20..], AutoclearFeatures);
        BinaryPrimitives.WriteUInt64LittleEndian(s[0x28..], L1TableOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(s[0x30..], ImageSize);
        BinaryPrimitives.WriteUInt32LittleEndian(s[0x38..], BackingFilenameOffset);
        BinaryPrimitives.WriteUInt32LittleEndian(s[0x3c..], BackingFilenameSize);
    }

    public bool HasBackingFile => (Features & QedLayout.FeatureBackingFile) != 0;

    public bool NeedCheck => (Features & QedLayout.FeatureNeedCheck) != 0;
}
