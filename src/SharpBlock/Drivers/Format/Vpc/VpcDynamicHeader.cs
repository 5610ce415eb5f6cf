using System.Buffers.Binary;

namespace SharpBlock.Drivers.Format.Vpc;

/// <summary>
/// The dynamic disk header (1024 bytes, big-endian) that the footer's data_offset names:
/// <code>
///   0  cookie[8] "cxsparse"       32  block_size (a power of two, 2 MiB by default)
///   8  data_offset (u64, unused)  36  checksum
///  16  table_offset (u64): BAT    40  parent_uuid[16], 56 parent_timestamp, 60 reserved
///  24  header_version             64  parent_name[512] (UTF-16), 576 parent_locator[8] (24 bytes each)
///  28  max_table_entries          768 reserved[256]
/// </code>
/// QEMU does not check this header's checksum, so neither do we; we write a correct one.
/// </summary>
public readonly record struct VpcDynamicHeader
{
    public const int Size = 1024;
    public const int DataOffsetOffset = 8;
    public const int TableOffsetOffset = DataOffsetOffset + 8;
    public const int VersionOffset = TableOffsetOffset + 8;
    public const int MaxTableEntriesOffset = VersionOffset + 4;
    public const int BlockSizeOffset = MaxTableEntriesOffset + 4;
    public const int ChecksumOffset = BlockSizeOffset + 4;

    public bool HasCookie { get; init; }
    public ulong DataOffset { get; init; }
    public ulong TableOffset { get; init; }
    public uint Version { get; init; }
    public uint MaxTableEntries { get; init; }
    public uint BlockSize { get; init; }

    public static VpcDynamicHeader Read(ReadOnlySpan<byte> s) => new()
    {
        HasCookie = s[..8].SequenceEqual(VpcLayout.SparseCookie),
        DataOffset = BinaryPrimitives.ReadUInt64BigEndian(s[DataOffsetOffset..]),
        TableOffset = BinaryPrimitives.ReadUInt64BigEndian(s[TableOffsetOffset..]),
        Version = BinaryPrimitives.ReadUInt32BigEndian(s[VersionOffset..]),
        MaxTableEntries = BinaryPrimitives.ReadUInt32BigEndian(s[MaxTableEntriesOffset..]),
        BlockSize = BinaryPrimitives.ReadUInt32BigEndian(s[BlockSizeOffset..]),
    };

    public void Write(Span<byte> s)
    {
        VpcLayout.SparseCookie.CopyTo(s);
        BinaryPrimitives.WriteUInt64BigEndian(s[DataOffsetOffset..], DataOffset);
        BinaryPrimitives.WriteUInt64BigEndian(s[TableOffsetOffset..], TableOffset);
        BinaryPrimitives.WriteUInt32BigEndian(s[VersionOffset..], Version);
        BinaryPrimitives.WriteUInt32BigEndian(s[MaxTableEntriesOffset..], MaxTableEntries);
        BinaryPrimitives.WriteUInt32BigEndian(s[BlockSizeOffset..], BlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(s[ChecksumOffset..], VpcLayout.Checksum(s[..Size], ChecksumOffset));
    }
}
