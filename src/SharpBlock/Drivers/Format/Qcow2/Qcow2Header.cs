using System.Buffers.Binary;

namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>
/// The qcow2 header, all fields big-endian:
/// <code>
///   0 magic                    4     40 l1_table_offset         8
///   4 version                  4     48 refcount_table_offset   8
///   8 backing_file_offset      8     56 refcount_table_clusters 4
///  16 backing_file_size        4     60 nb_snapshots            4
///  20 cluster_bits             4     64 snapshots_offset        8
///  24 size                     8     -- version 3 only --
///  32 crypt_method             4     72 incompatible_features   8
///  36 l1_size                  4     80 compatible_features     8
///                                    88 autoclear_features      8
///                                    96 refcount_order          4
///                                   100 header_length           4
///                                   104 compression_type        1 (when header_length > 104)
/// </code>
/// A version 2 header reads with the version 3 defaults: no features, refcount_order 4, length 72.
/// </summary>
public readonly record struct Qcow2Header
{
    public const int MagicOffset = 0;
    public const int VersionOffset = MagicOffset + 4;
    public const int BackingFileOffsetOffset = VersionOffset + 4;
    public const int BackingFileSizeOffset = BackingFileOffsetOffset + 8;
    public const int ClusterBitsOffset = BackingFileSizeOffset + 4;
    public const int SizeOffset = ClusterBitsOffset + 4;
    public const int CryptMethodOffset = SizeOffset + 8;
    public const int L1SizeOffset = CryptMethodOffset + 4;
    public const int L1TableOffsetOffset = L1SizeOffset + 4;
    public const int RefcountTableOffsetOffset = L1TableOffsetOffset + 8;
    public const int RefcountTableClustersOffset = RefcountTableOffsetOffset + 8;
    public const int NbSnapshotsOffset = RefcountTableClustersOffset + 4;
    public const int SnapshotsOffsetOffset = NbSnapshotsOffset + 4;
    public const int IncompatibleFeaturesOffset = SnapshotsOffsetOffset + 8;
    public const int CompatibleFeaturesOffset = IncompatibleFeaturesOffset + 8;
    public const int AutoclearFeaturesOffset = CompatibleFeaturesOffset + 8;
    public const int RefcountOrderOffset = AutoclearFeaturesOffset + 8;
    public const int HeaderLengthOffset = RefcountOrderOffset + 4;
    public const int CompressionTypeOffset = HeaderLengthOffset + 4;

    /// <summary>Bytes <see cref="Write"/> produces: the 7.2 layout for version 3, 72 bytes for version 2.</summary>
    public int Size => Version >= 3 ? (int)HeaderLength : Qcow2Layout.V2HeaderSize;

    public uint Magic { get; init; }
    public uint Version { get; init; }
    public ulong BackingFileOffset { get; init; }
    public uint BackingFileSize { get; init; }
    public uint ClusterBits { get; init; }
    public ulong Size64 { get; init; }
    public uint CryptMethod { get; init; }
    public uint L1Size { get; init; }
    public ulong L1TableOffset { get; init; }
    public ulong RefcountTableOffset { get; init; }
    public uint RefcountTableClusters { get; init; }
    public uint NbSnapshots { get; init; }
    public ulong SnapshotsOffset { get; init; }
    public ulong IncompatibleFeatures { get; init; }
    public ulong CompatibleFeatures { get; init; }
    public ulong AutoclearFeatures { get; init; }
    public uint RefcountOrder { get; init; }
    public uint HeaderLength { get; init; }
    public byte CompressionType { get; init; }

    /// <summary>Decodes a header; the caller has checked there are at least 72 bytes (104 for version 3).</summary>
    public static Qcow2Header Read(ReadOnlySpan<byte> b)
    {
        uint version = BinaryPrimitives.ReadUInt32BigEndian(b[VersionOffset..]);
        var h = new Qcow2Header
        {
            Magic = BinaryPrimitives.ReadUInt32BigEndian(b[MagicOffset..]),
            Version = version,
            BackingFileOffset = BinaryPrimitives.ReadUInt64BigEndian(b[BackingFileOffsetOffset..]),
            BackingFileSize = BinaryPrimitives.ReadUInt32BigEndian(b[BackingFileSizeOffset..]),
            ClusterBits = BinaryPrimitives.ReadUInt32BigEndian(b[ClusterBitsOffset..]),
            Size64 = BinaryPrimitives.ReadUInt64BigEndian(b[SizeOffset..]),
            CryptMethod = BinaryPrimitives.ReadUInt32BigEndian(b[CryptMethodOffset..]),
            L1Size = BinaryPrimitives.ReadUInt32BigEndian(b[L1SizeOffset..]),
            L1TableOffset = BinaryPrimitives.ReadUInt64BigEndian(b[L1TableOffsetOffset..]),
            RefcountTableOffset = BinaryPrimitives.ReadUInt64BigEndian(b[RefcountTableOffsetOffset..]),
            RefcountTableClusters = BinaryPrimitives.ReadUInt32BigEndian(b[RefcountTableClustersOffset..]),
            NbSnapshots = BinaryPrimitives.ReadUInt32BigEndian(b[NbSnapshotsOffset..]),
            SnapshotsOffset = BinaryPrimitives.ReadUInt64BigEndian(b[SnapshotsOffsetOffset..]),
            RefcountOrder = 4,
            HeaderLength = Qcow2Layout.V2HeaderSize,
        };
        if (version < 3 || b.Length < Qcow2Layout.V3HeaderSize)
            return h;
        uint length = BinaryPrimitives.ReadUInt32BigEndian(b[HeaderLengthOffset..]);
        return h with
        {
            IncompatibleFeatures = BinaryPrimitives.ReadUInt64BigEndian(b[IncompatibleFeaturesOffset..]),
            CompatibleFeatures = BinaryPrimitives.ReadUInt64BigEndian(b[CompatibleFeaturesOffset..]),
            AutoclearFeatures = BinaryPrimitives.ReadUInt64BigEndian(b[AutoclearFeaturesOffset..]),
            RefcountOrder = BinaryPrimitives.ReadUInt32BigEndian(b[RefcountOrderOffset..]),
            HeaderLength = length,
            CompressionType = length > CompressionTypeOffset && b.Length > CompressionTypeOffset ? b[CompressionTypeOffset] : (byte)0,
        };
    }

    /// <summary>Encodes the header into the first <see cref="Size"/> bytes (unknown trailing bytes are zeroed).</summary>
    public void Write(Span<byte> b)
    {
        b[..Size].Clear();
        BinaryPrimitives.WriteUInt32BigEndian(b[MagicOffset..], Magic);
        BinaryPrimitives.WriteUInt32BigEndian(b[VersionOffset..], Version);
        BinaryPrimitives.WriteUInt64BigEndian(b[BackingFileOffsetOffset..], BackingFileOffset);
        BinaryPrimitives.WriteUInt32BigEndian(b[BackingFileSizeOffset..], BackingFileSize);
        BinaryPrimitives.WriteUInt32BigEndian(b[ClusterBitsOffset..], ClusterBits);
        BinaryPrimitives.WriteUInt64BigEndian(b[SizeOffset..], Size64);
        BinaryPrimitives.WriteUInt32BigEndian(b[CryptMethodOffset..], CryptMethod);
        BinaryPrimitives.WriteUInt32BigEndian(b[L1SizeOffset..], L1Size);
        BinaryPrimitives.WriteUInt64BigEndian(b[L1TableOffsetOffset..], L1TableOffset);
        BinaryPrimitives.WriteUInt64BigEndian(b[RefcountTableOffsetOffset..], RefcountTableOffset);
        BinaryPrimitives.WriteUInt32BigEndian(b[RefcountTableClustersOffset..], RefcountTableClusters);
        BinaryPrimitives.WriteUInt32BigEndian(b[NbSnapshotsOffset..], NbSnapshots);
        BinaryPrimitives.WriteUInt64BigEndian(b[SnapshotsOffsetOffset..], SnapshotsOffset);
        if (Version < 3)
            return;
        BinaryPrimitives.WriteUInt64BigEndian(b[IncompatibleFeaturesOffset..], IncompatibleFeatures);
        BinaryPrimitives.WriteUInt64BigEndian(b[CompatibleFeaturesOffset..], CompatibleFeatures);
        BinaryPrimitives.WriteUInt64BigEndian(b[AutoclearFeaturesOffset..], AutoclearFeatures);
        BinaryPrimitives.WriteUInt32BigEndian(b[RefcountOrderOffset..], RefcountOrder);
        BinaryPrimitives.WriteUInt32BigEndian(b[HeaderLengthOffset..], HeaderLength);
        if (HeaderLength > CompressionTypeOffset)
            b[CompressionTypeOffset] = CompressionType;
    }
}
