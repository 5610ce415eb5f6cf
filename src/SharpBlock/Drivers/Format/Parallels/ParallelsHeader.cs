using System.Buffers.Binary;
using System.Text;

namespace SharpBlock.Drivers.Format.Parallels;

/// <summary>
/// The Parallels header, the first 64 bytes of the image, every field little-endian; the BAT (one 32-bit
/// entry a cluster) follows it directly:
/// <code>
///   0x00  magic[16]     "WithoutFreeSpace" (BAT in sectors) or "WithouFreSpacExt" (BAT in clusters)
///   0x10  version       2
///   0x14  heads         geometry, unused
///   0x18  cylinders     geometry, unused
///   0x1c  tracks        sectors a cluster
///   0x20  bat_entries   entries of the BAT
///   0x24  nb_sectors    virtual size in sectors (u64; only the low 32 bits count with the old magic)
///   0x2c  inuse         0x746F6E59 while open for writing
///   0x30  data_off      first data sector (0: right after the BAT)
///   0x34  flags
///   0x38  ext_off       sector of the format extension (u64), ignored here
/// </code>
/// </summary>
public readonly record struct ParallelsHeader
{
    public const int Size = 64;
    public const int VersionOffset = 0x10;
    public const int HeadsOffset = 0x14;
    public const int CylindersOffset = 0x18;
    public const int TracksOffset = 0x1c;
    public const int BatEntriesOffset = 0x20;
    public const int NbSectorsOffset = 0x24;
    public const int InUseOffset = 0x2c;
    public const int DataOffOffset = 0x30;
    public const int FlagsOffset = 0x34;
    public const int ExtOffOffset = 0x38;

    public string Magic { get; init; }
    public uint Version { get; init; }
    public uint Heads { get; init; }
    public uint Cylinders { get; init; }
    public uint Tracks { get; init; }
    public uint BatEntries { get; init; }
    public ulong NbSectors { get; init; }
    public uint InUse { get; init; }
    public uint DataOff { get; init; }
    public uint Flags { get; init; }
    public ulong ExtOff { get; init; }

    public static ParallelsHeader Read(ReadOnlySpan<byte> s) => new()
    {
        Magic = Encoding.Latin1.GetString(s[..ParallelsLayout.MagicLength]),
        Version = BinaryPrimitives.ReadUInt32LittleEndian(s[VersionOffset..]),
        Heads = BinaryPrimitives.ReadUInt32LittleEndian(s[HeadsOffset..]),
        Cylinders = BinaryPrimitives.ReadUInt32LittleEndian(s[CylindersOffset..]),
        Tracks = BinaryPrimitives.ReadUInt32LittleEndian(s[TracksOffset..]),
        BatEntries = BinaryPrimitives.ReadUInt32LittleEndian(s[BatEntriesOffset..]),
        NbSectors = BinaryPrimitives.ReadUInt64LittleEndian(s[NbSectorsOffset..]),
        InUse = BinaryPrimitives.ReadUInt32LittleEndian(s[InUseOffset..]),
        DataOff = BinaryPrimitives.ReadUInt32LittleEndian(s[DataOffOffset..]),
        Flags = BinaryPrimitives.ReadUInt32LittleEndian(s[FlagsOffset..]),
        ExtOff = BinaryPrimitives.ReadUInt64LittleEndian(s[ExtOffOffset..]),
    };

    public void Write(Span<byte> s)
    {
        Encoding.Latin1.GetBytes(Magic.AsSpan(0, ParallelsLayout.MagicLength), s);
        BinaryPrimitives.WriteUInt32LittleEndian(s[VersionOffset..], Version);
        BinaryPrimitives.WriteUInt32LittleEndian(s[HeadsOffset..], Heads);
        BinaryPrimitives.WriteUInt32LittleEndian(s[CylindersOffset..], Cylinders);
        BinaryPrimitives.WriteUInt32LittleEndian(s[TracksOffset..], Tracks);
        BinaryPrimitives.WriteUInt32LittleEndian(s[BatEntriesOffset..], BatEntries);
        BinaryPrimitives.WriteUInt64LittleEndian(s[NbSectorsOffset..], NbSectors);
        BinaryPrimitives.WriteUInt32LittleEndian(s[InUseOffset..], InUse);
        BinaryPrimitives.WriteUInt32LittleEndian(s[DataOffOffset..], DataOff);
        BinaryPrimitives.WriteUInt32LittleEndian(s[FlagsOffset..], Flags);
        BinaryPrimitives.WriteUInt64LittleEndian(s[ExtOffOffset..], ExtOff);
    }

    /// <summary>The magic and version QEMU probes for (and refuses anything else with).</summary>
    public static bool IsParallels(ReadOnlySpan<byte> s) =>
        s.Length >= Size
        && (s[..ParallelsLayout.MagicLength].SequenceEqual("WithoutFreeSpace"u8) || s[..ParallelsLayout.MagicLength].SequenceEqual("WithouFreSpacExt"u8))
        && BinaryPrimitives.ReadUInt32LittleEndian(s[VersionOffset..]) == ParallelsLayout.Version;
}
