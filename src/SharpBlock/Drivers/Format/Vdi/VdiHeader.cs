using System.Buffers.Binary;

namespace SharpBlock.Drivers.Format.Vdi;

/// <summary>
/// The VDI header, sector 0 of the image, every field little-endian:
/// <code>
///   0x000  text[64]          "&lt;&lt;&lt; ... Disk Image &gt;&gt;&gt;\n", ignored by readers
///   0x040  signature         0xbeda107f
///   0x044  version           0x00010001 (1.1)
///   0x048  header_size       0x180 for v1.1
///   0x04c  image_type        1 dynamic, 2 static
///   0x050  image_flags
///   0x054  description[256]
///   0x154  offset_bmap       byte offset of the block map (sector aligned)
///   0x158  offset_data       byte offset of block 0 (sector aligned)
///   0x15c  cylinders, heads, sectors (legacy geometry, unused)
///   0x168  sector_size       512
///   0x16c  unused
///   0x170  disk_size (u64)   virtual size in bytes
///   0x178  block_size        1 MiB
///   0x17c  block_extra
///   0x180  blocks_in_image   entries of the block map
///   0x184  blocks_allocated  blocks in the data area
///   0x188  uuid_image, 0x198 uuid_last_snap, 0x1a8 uuid_link, 0x1b8 uuid_parent (16 bytes each)
///   0x1c8  unused[56]
/// </code>
/// UUIDs are kept as the 16 bytes on disk: only their being all zero matters here.
/// </summary>
public readonly record struct VdiHeader
{
    public const int Size = 512;
    public const int TextLength = 0x40;
    public const int SignatureOffset = TextLength;
    public const int VersionOffset = SignatureOffset + 4;
    public const int HeaderSizeOffset = VersionOffset + 4;
    public const int ImageTypeOffset = HeaderSizeOffset + 4;
    public const int ImageFlagsOffset = ImageTypeOffset + 4;
    public const int DescriptionOffset = ImageFlagsOffset + 4;
    public const int DescriptionLength = 256;
    public const int BmapOffsetOffset = DescriptionOffset + DescriptionLength;
    public const int DataOffsetOffset = BmapOffsetOffset + 4;
    public const int CylindersOffset = DataOffsetOffset + 4;
    public const int SectorSizeOffset = CylindersOffset + 12;
    public const int DiskSizeOffset = SectorSizeOffset + 8;
    public const int BlockSizeOffset = DiskSizeOffset + 8;
    public const int BlockExtraOffset = BlockSizeOffset + 4;
    public const int BlocksInImageOffset = BlockExtraOffset + 4;
    public const int BlocksAllocatedOffset = BlocksInImageOffset + 4;
    public const int UuidImageOffset = BlocksAllocatedOffset + 4;
    public const int UuidLength = 16;
    public const int UuidLastSnapOffset = UuidImageOffset + UuidLength;
    public const int UuidLinkOffset = UuidLastSnapOffset + UuidLength;
    public const int UuidParentOffset = UuidLinkOffset + UuidLength;

    public uint Signature { get; init; }
    public uint Version { get; init; }
    public uint HeaderSize { get; init; }
    public uint ImageType { get; init; }
    public uint OffsetBmap { get; init; }
    public uint OffsetData { get; init; }
    public uint SectorSize { get; init; }
    public ulong DiskSize { get; init; }
    public uint BlockSize { get; init; }
    public uint BlocksInImage { get; init; }
    public uint BlocksAllocated { get; init; }
    public bool LinkUuidIsNull { get; init; }
    public bool ParentUuidIsNull { get; init; }

    public static VdiHeader Read(ReadOnlySpan<byte> s) => new()
    {
        Signature = BinaryPrimitives.ReadUInt32LittleEndian(s[SignatureOffset..]),
        Version = BinaryPrimitives.ReadUInt32LittleEndian(s[VersionOffset..]),
        HeaderSize = BinaryPrimitives.ReadUInt32LittleEndian(s[HeaderSizeOffset..]),
        ImageType = BinaryPrimitives.ReadUInt32LittleEndian(s[ImageTypeOffset..]),
        OffsetBmap = BinaryPrimitives.ReadUInt32LittleEndian(s[BmapOffsetOffset..]),
        OffsetData = BinaryPrimitives.ReadUInt32LittleEndian(s[DataOffsetOffset..]),
        SectorSize = BinaryPrimitives.ReadUInt32LittleEndian(s[SectorSizeOffset..]),
        DiskSize = BinaryPrimitives.ReadUInt64LittleEndian(s[DiskSizeOffset..]),
        BlockSize = BinaryPrimitives.ReadUInt32LittleEndian(s[BlockSizeOffset..]),
        BlocksInImage = BinaryPrimitives.ReadUInt32LittleEndian(s[BlocksInImageOffset..]),
        BlocksAllocated = BinaryPrimitives.ReadUInt32LittleEndian(s[BlocksAllocatedOffset..]),
        LinkUuidIsNull = !s.Slice(UuidLinkOffset, UuidLength).ContainsAnyExcept((byte)0),
        ParentUuidIsNull = !s.Slice(UuidParentOffset, UuidLength).ContainsAnyExcept((byte)0),
    };

    /// <summary>Writes the fields this type models over <paramref name="s"/>; text, description and UUIDs are left as they are.</summary>
    public void Write(Span<byte> s)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(s[SignatureOffset..], Signature);
        BinaryPrimitives.WriteUInt32LittleEndian(s[VersionOffset..], Version);
        BinaryPrimitives.WriteUInt32LittleEndian(s[HeaderSizeOffset..], HeaderSize);
        BinaryPrimitives.WriteUInt32LittleEndian(s[ImageTypeOffset..], ImageType);
        BinaryPrimitives.WriteUInt32LittleEndian(s[BmapOffsetOffset..], OffsetBmap);
        BinaryPrimitives.WriteUInt32LittleEndian(s[DataOffsetOffset..], OffsetData);
        BinaryPrimitives.WriteUInt32LittleEndian(s[SectorSizeOffset..], SectorSize);
        BinaryPrimitives.WriteUInt64LittleEndian(s[DiskSizeOffset..], DiskSize);
        BinaryPrimitives.WriteUInt32LittleEndian(s[BlockSizeOffset..], BlockSize);
        BinaryPrimitives.WriteUInt32LittleEndian(s[BlocksInImageOffset..], BlocksInImage);
        BinaryPrimitives.WriteUInt32LittleEndian(s[BlocksAllocatedOffset..], BlocksAllocated);
    }
}
