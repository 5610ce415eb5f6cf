using System.Buffers.Binary;

namespace SharpBlock.Drivers.Format.Vmdk;

/// <summary>
/// The header of a hosted sparse extent (the first sector; little-endian; sizes and offsets in sectors).
/// <code>
///  offset size field
///       0    4 magic "KDMV"
///       4    4 version (1, 2 with zeroed grains, 3)
///       8    4 flags
///      12    8 capacity            (sectors of guest data in this extent)
///      20    8 granularity         (sectors per grain)
///      28    8 desc_offset         (embedded descriptor)
///      36    8 desc_size
///      44    4 num_gtes_per_gt
///      48    8 rgd_offset          (redundant grain directory)
///      56    8 gd_offset           (grain directory, or ~0: in the footer)
///      64    8 grain_offset        (first sector after the metadata)
///      72    1 filler
///      73    4 check bytes "\n \r\n"
///      77    2 compress_algorithm  (1 = deflate)
/// </code>
/// </summary>
public readonly record struct VmdkSparseHeader
{
    public const int Size = VmdkLayout.SectorSize;

    public const int MagicOffset = 0;
    public const int VersionOffset = MagicOffset + 4;
    public const int FlagsOffset = VersionOffset + 4;
    public const int CapacityOffset = FlagsOffset + 4;
    public const int GranularityOffset = CapacityOffset + 8;
    public const int DescOffsetOffset = GranularityOffset + 8;
    public const int DescSizeOffset = DescOffsetOffset + 8;
    public const int GtesPerGtOffset = DescSizeOffset + 8;
    public const int RgdOffsetOffset = GtesPerGtOffset + 4;
    public const int GdOffsetOffset = RgdOffsetOffset + 8;
    public const int GrainOffsetOffset = GdOffsetOffset + 8;
    public const int FillerOffset = GrainOffsetOffset + 8;
    public const int CheckBytesOffset = FillerOffset + 1;
    public const int CompressAlgorithmOffset = CheckBytesOffset + 4;
    public const int UsedBytes = CompressAlgorithmOffset + 2;

    public uint Magic { get; init; }
    public uint Version { get; init; }
    public uint Flags { get; init; }
    public ulong Capacity { get; init; }
    public ulong Granularity { get; init; }
    public ulong DescOffset { get; init; }
    public ulong DescSize { get; init; }
    public uint GtesPerGt { get; init; }
    public ulong RgdOffset { get; init; }
    public ulong GdOffset { get; init; }
    public ulong GrainOffset { get; init; }
    public uint CheckBytes { get; init; }
    public ushort CompressAlgorithm { get; init; }

    public bool Compressed => CompressAlgorithm == VmdkLayout.CompressionDeflate;
    public bool HasMarkers => (Flags & VmdkLayout.FlagMarkers) != 0;
    public bool HasZeroGrains => (Flags & VmdkLayout.FlagZeroGrain) != 0;
    public bool HasRedundantTables => (Flags & VmdkLayout.FlagRedundantGrainTable) != 0;

    public static VmdkSparseHeader Read(ReadOnlySpan<byte> b) => new()
    {
        Magic = BinaryPrimitives.ReadUInt32LittleEndian(b[MagicOffset..]),
        Version = BinaryPrimitives.ReadUInt32LittleEndian(b[VersionOffset..]),
        Flags = BinaryPrimitives.ReadUInt32LittleEndian(b[FlagsOffset..]),
        Capacity = BinaryPrimitives.ReadUInt64LittleEndian(b[CapacityOffset..]),
        Granularity = BinaryPrimitives.ReadUInt64LittleEndian(b[GranularityOffset..]),
        DescOffset = BinaryPrimitives.ReadUInt64LittleEndian(b[DescOffsetOffset..]),
        DescSize = BinaryPrimitives.ReadUInt64LittleEndian(b[DescSizeOffset..]),
        GtesPerGt = BinaryPrimitives.ReadUInt32LittleEndian(b[GtesPerGtOffset..]),
        RgdOffset = BinaryPrimitives.ReadUInt64LittleEndian(b[RgdOffsetOffset..]),
        GdOffset = BinaryPrimitives.ReadUInt64LittleEndian(b[GdOffsetOffset..]),
        GrainOffset = BinaryPrimitives.ReadUInt64LittleEndian(b[GrainOffsetOffset..]),
        CheckBytes = BinaryPrimitives.ReadUInt32LittleEndian(b[CheckBytesOffset..]),
        CompressAlgorithm = BinaryPrimitives.ReadUInt16LittleEndian(b[CompressAlgorithmOffset..]),
    };

    /// <summary>Writes the used part of the sector; the rest of <paramref name="b"/> is left as it is (zeros in a new buffer).</summary>
    public void Write(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(b[MagicOffset..], Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(b[VersionOffset..], Version);
        BinaryPrimitives.WriteUInt32LittleEndian(b[FlagsOffset..], Flags);
        BinaryPrimitives.WriteUInt64LittleEndian(b[CapacityOffset..], Capacity);
        BinaryPrimitives.WriteUInt64LittleEndian(b[GranularityOffset..], Granularity);
        BinaryPrimitives.WriteUInt64LittleEndian(b[DescOffsetOffset..], DescOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(b[DescSizeOffset..], DescSize);
        BinaryPrimitives.WriteUInt32LittleEndian(b[GtesPerGtOffset..], GtesPerGt);
        BinaryPrimitives.WriteUInt64LittleEndian(b[RgdOffsetOffset..], RgdOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(b[GdOffsetOffset..], GdOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(b[GrainOffsetOffset..], GrainOffset);
        b[FillerOffset] = 0;
        BinaryPrimitives.WriteUInt32LittleEndian(b[CheckBytesOffset..], CheckBytes);
        BinaryPrimitives.WriteUInt16LittleEndian(b[CompressAlgorithmOffset..], CompressAlgorithm);
    }
}
