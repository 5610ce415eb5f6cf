using System.Buffers.Binary;

namespace SharpBlock.Drivers.Format.Bochs;

/// <summary>
/// The Bochs redolog header, the first 512 bytes, integers little-endian, strings NUL-terminated:
/// <code>
///   0x00  magic[32]    "Bochs Virtual HD Image"
///   0x20  type[16]     "Redolog"
///   0x30  subtype[16]  "Growing"
///   0x40  version      0x00020000 (v2) or 0x00010000 (v1)
///   0x44  header       header size in bytes; the catalog starts there
///   0x48  catalog      catalog entries (one u32 an extent, 0xffffffff unallocated)
///   0x4c  bitmap       bytes of each extent's sector bitmap
///   0x50  extent       bytes of each extent's data
///   0x54  v2: timestamp (u32), 0x58 disk (u64);  v1: 0x54 disk (u64)
/// </code>
/// The data area follows the catalog: extent i is its bitmap then its sectors, at a stride of both, rounded to sectors.
/// </summary>
public readonly record struct BochsHeader
{
    public const int Size = 512;
    public const int TypeOffset = 0x20;
    public const int SubtypeOffset = 0x30;
    public const int VersionOffset = 0x40;
    public const int HeaderSizeOffset = 0x44;
    public const int CatalogOffset = 0x48;
    public const int BitmapOffset = 0x4c;
    public const int ExtentOffset = 0x50;
    public const int DiskV1Offset = 0x54;
    public const int DiskV2Offset = 0x58;

    public uint Version { get; init; }
    public uint HeaderSize { get; init; }
    public uint Catalog { get; init; }
    public uint Bitmap { get; init; }
    public uint Extent { get; init; }
    public ulong Disk { get; init; }

    public static BochsHeader Read(ReadOnlySpan<byte> s)
    {
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(s[VersionOffset..]);
        return new()
        {
            Version = version,
            HeaderSize = BinaryPrimitives.ReadUInt32LittleEndian(s[HeaderSizeOffset..]),
            Catalog = BinaryPrimitives.ReadUInt32LittleEndian(s[CatalogOffset..]),
            Bitmap = BinaryPrimitives.ReadUInt32LittleEndian(s[BitmapOffset..]),
            Extent = BinaryPrimitives.ReadUInt32LittleEndian(s[ExtentOffset..]),
            Disk = BinaryPrimitives.ReadUInt64LittleEndian(s[(version == BochsLayout.Version1 ? DiskV1Offset : DiskV2Offset)..]),
        };
    }

    /// <summary>The magic, type and subtype as C strings, and a known version: what QEMU probes for.</summary>
    public static bool IsGrowingRedolog(ReadOnlySpan<byte> s)
    {
        if (s.Length < Size)
            return false;
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(s[VersionOffset..]);
        return CString(s[..TypeOffset], "Bochs Virtual HD Image"u8) && CString(s[TypeOffset..SubtypeOffset], "Redolog"u8)
            && CString(s[SubtypeOffset..VersionOffset], "Growing"u8) && (version == BochsLayout.Version2 || version == BochsLayout.Version1);
    }

    private static bool CString(ReadOnlySpan<byte> field, ReadOnlySpan<byte> want) =>
        field.Length > want.Length && field[..want.Length].SequenceEqual(want) && field[want.Length] == 0;
}
