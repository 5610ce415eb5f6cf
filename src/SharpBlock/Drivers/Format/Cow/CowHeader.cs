using System.Buffers.Binary;
using System.Text;

namespace SharpBlock.Drivers.Format.Cow;

/// <summary>
/// The User-Mode Linux COW version 2 header at byte 0, packed, every number big-endian:
/// <code>
///   0x000  magic          0x4f4f4f4d ("OOOM")
///   0x004  version        2
///   0x008  backing_file   1024 bytes, NUL-terminated path
///   0x408  mtime          i32, the backing file's modification time when the image was made
///   0x40c  size           u64, virtual size in bytes
///   0x414  sectorsize     i32, 512
/// </code>
/// The sector bitmap follows directly (bit i, LSB first in byte i/8, set when sector i is in this image),
/// then the data area at the next 512-byte boundary, sector i at data + 512 * i.
/// </summary>
public readonly record struct CowHeader
{
    public const int Size = 1048;
    public const int BackingFileOffset = 8;
    public const int BackingFileLength = 1024;
    public const int MtimeOffset = BackingFileOffset + BackingFileLength;
    public const int DiskSizeOffset = MtimeOffset + 4;
    public const int SectorSizeOffset = DiskSizeOffset + 8;

    public uint Magic { get; init; }
    public uint Version { get; init; }
    public string BackingFile { get; init; }
    public int Mtime { get; init; }
    public ulong DiskSize { get; init; }
    public int SectorSize { get; init; }

    public static CowHeader Read(ReadOnlySpan<byte> s)
    {
        var name = s.Slice(BackingFileOffset, BackingFileLength);
        int end = name.IndexOf((byte)0);
        return new()
        {
            Magic = BinaryPrimitives.ReadUInt32BigEndian(s),
            Version = BinaryPrimitives.ReadUInt32BigEndian(s[4..]),
            BackingFile = Encoding.UTF8.GetString(end < 0 ? name : name[..end]),
            Mtime = BinaryPrimitives.ReadInt32BigEndian(s[MtimeOffset..]),
            DiskSize = BinaryPrimitives.ReadUInt64BigEndian(s[DiskSizeOffset..]),
            SectorSize = BinaryPrimitives.ReadInt32BigEndian(s[SectorSizeOffset..]),
        };
    }

    public void Write(Span<byte> s)
    {
        s[..Size].Clear();
        BinaryPrimitives.WriteUInt32BigEndian(s, Magic);
        BinaryPrimitives.WriteUInt32BigEndian(s[4..], Version);
        Encoding.UTF8.GetBytes(BackingFile ?? "", s.Slice(BackingFileOffset, BackingFileLength - 1));
        BinaryPrimitives.WriteInt32BigEndian(s[MtimeOffset..], Mtime);
        BinaryPrimitives.WriteUInt64BigEndian(s[DiskSizeOffset..], DiskSize);
        BinaryPrimitives.WriteInt32BigEndian(s[SectorSizeOffset..], SectorSize);
    }
}
