using System.Buffers.Binary;

namespace SharpBlock.Drivers.Format.Vpc;

/// <summary>
/// The VHD footer (512 bytes, big-endian), the last sector of every image and the first of a dynamic one:
/// <code>
///   0  cookie[8]  "conectix"      40  original_size (u64)
///   8  features                   48  current_size (u64)
///  12  file_format_version        56  cylinders (u16), 58 heads (u8), 59 sectors per track (u8)
///  16  data_offset (u64)          60  disk_type: 2 fixed, 3 dynamic, 4 differencing
///  24  timestamp (s since 2000)   64  checksum
///  28  creator_app[4]             68  uuid[16]
///  32  creator_version            84  saved_state (u8), then reserved
///  36  creator_host_os[4]
/// </code>
/// </summary>
public readonly record struct VpcFooter
{
    public const int Size = 512;
    public const int CookieOffset = 0;
    public const int FeaturesOffset = 8;
    public const int VersionOffset = FeaturesOffset + 4;
    public const int DataOffsetOffset = VersionOffset + 4;
    public const int TimestampOffset = DataOffsetOffset + 8;
    public const int CreatorAppOffset = TimestampOffset + 4;
    public const int CreatorVersionOffset = CreatorAppOffset + 4;
    public const int CreatorOsOffset = CreatorVersionOffset + 4;
    public const int OriginalSizeOffset = CreatorOsOffset + 4;
    public const int CurrentSizeOffset = OriginalSizeOffset + 8;
    public const int CylindersOffset = CurrentSizeOffset + 8;
    public const int HeadsOffset = CylindersOffset + 2;
    public const int SectorsOffset = HeadsOffset + 1;
    public const int DiskTypeOffset = SectorsOffset + 1;
    public const int ChecksumOffset = DiskTypeOffset + 4;
    public const int UuidOffset = ChecksumOffset + 4;

    public bool HasCookie { get; init; }
    public uint Features { get; init; }
    public uint Version { get; init; }
    public ulong DataOffset { get; init; }
    public uint Timestamp { get; init; }
    public uint CreatorApp { get; init; }
    public uint CreatorVersion { get; init; }
    public uint CreatorOs { get; init; }
    public ulong OriginalSize { get; init; }
    public ulong CurrentSize { get; init; }
    public ushort Cylinders { get; init; }
    public byte Heads { get; init; }
    public byte SectorsPerTrack { get; init; }
    public uint DiskType { get; init; }
    public uint Checksum { get; init; }

    public long GeometrySectors => (long)Cylinders * Heads * SectorsPerTrack;

    public static uint Tag(ReadOnlySpan<byte> fourChars) => BinaryPrimitives.ReadUInt32BigEndian(fourChars);

    public static VpcFooter Read(ReadOnlySpan<byte> s) => new()
    {
        HasCookie = s[..8].SequenceEqual(VpcLayout.FooterCookie),
        Features = BinaryPrimitives.ReadUInt32BigEndian(s[FeaturesOffset..]),
        Version = BinaryPrimitives.ReadUInt32BigEndian(s[VersionOffset..]),
        DataOffset = BinaryPrimitives.ReadUInt64BigEndian(s[DataOffsetOffset..]),
        Timestamp = BinaryPrimitives.ReadUInt32BigEndian(s[TimestampOffset..]),
        CreatorApp = BinaryPrimitives.ReadUInt32BigEndian(s[CreatorAppOffset..]),
        CreatorVersion = BinaryPrimitives.ReadUInt32BigEndian(s[CreatorVersionOffset..]),
        CreatorOs = BinaryPrimitives.ReadUInt32BigEndian(s[CreatorOsOffset..]),
        OriginalSize = BinaryPrimitives.ReadUInt64BigEndian(s[OriginalSizeOffset..]),
        CurrentSize = BinaryPrimitives.ReadUInt64BigEndian(s[CurrentSizeOffset..]),
        Cylinders = BinaryPrimitives.ReadUInt16BigEndian(s[CylindersOffset..]),
        Heads = s[HeadsOffset],
        SectorsPerTrack = s[SectorsOffset],
        DiskType = BinaryPrimitives.ReadUInt32BigEndian(s[DiskTypeOffset..]),
        Checksum = BinaryPrimitives.ReadUInt32BigEndian(s[ChecksumOffset..]),
    };

    /// <summary>Writes the fields over <paramref name="s"/> (the UUID and reserved bytes stay) with a fresh checksum.</summary>
    public void Write(Span<byte> s)
    {
        VpcLayout.FooterCookie.CopyTo(s);
        BinaryPrimitives.WriteUInt32BigEndian(s[FeaturesOffset..], Features);
        BinaryPrimitives.WriteUInt32BigEndian(s[VersionOffset..], Version);
        BinaryPrimitives.WriteUInt64BigEndian(s[DataOffsetOffset..], DataOffset);
        BinaryPrimitives.WriteUInt32BigEndian(s[TimestampOffset..], Timestamp);
        BinaryPrimitives.WriteUInt32BigEndian(s[CreatorAppOffset..], CreatorApp);
        BinaryPrimitives.WriteUInt32BigEndian(s[CreatorVersionOffset..], CreatorVersion);
        BinaryPrimitives.WriteUInt32BigEndian(s[CreatorOsOffset..], CreatorOs);
        BinaryPrimitives.WriteUInt64BigEndian(s[OriginalSizeOffset..], OriginalSize);
        BinaryPrimitives.WriteUInt64BigEndian(s[CurrentSizeOffset..], CurrentSize);
        BinaryPrimitives.WriteUInt16BigEndian(s[CylindersOffset..], Cylinders);
        s[HeadsOffset] = Heads;
        s[SectorsOffset] = SectorsPerTrack;
        BinaryPrimitives.WriteUInt32BigEndian(s[DiskTypeOffset..], DiskType);
        BinaryPrimitives.WriteUInt32BigEndian(s[ChecksumOffset..], VpcLayout.Checksum(s[..Size], ChecksumOffset));
    }
}
