using System.Buffers.Binary;

namespace SharpBlock.Drivers.Format.Qcow;

/// <summary>
/// The qcow version 1 header at byte 0, every field big-endian:
/// <code>
///   0x00  magic               "QFI\xfb"
///   0x04  version             1
///   0x08  backing_file_offset u64, 0 when there is none
///   0x10  backing_file_size   u32, bytes of the name (no terminator)
///   0x14  mtime               u32 (qemu-img writes 0)
///   0x18  size                u64, virtual size in bytes
///   0x20  cluster_bits        u8
///   0x21  l2_bits             u8, log2 of entries per L2 table
///   0x22  padding             u16
///   0x24  crypt_method        u32, 0 none, 1 AES
///   0x28  l1_table_offset     u64
/// </code>
/// </summary>
public readonly record struct QcowHeader
{
    public const int Size = 48;
    public const int BackingFileOffsetOffset = 8;
    public const int BackingFileSizeOffset = 16;
    public const int MtimeOffset = 20;
    public const int SizeOffset = 24;
    public const int ClusterBitsOffset = 32;
    public const int L2BitsOffset = 33;
    public const int CryptMethodOffset = 36;
    public const int L1TableOffsetOffset = 40;

    public uint Magic { get; init; }
    public uint Version { get; init; }
    public ulong BackingFileOffset { get; init; }
    public uint BackingFileSize { get; init; }
    public uint Mtime { get; init; }
    public ulong DiskSize { get; init; }
    public byte ClusterBits { get; init; }
    public byte L2Bits { get; init; }
    public uint CryptMethod { get; init; }
    public ulong L1TableOffset { get; init; }

    public static QcowHeader Read(ReadOnlySpan<byte> s) => new()
    {
        Magic = BinaryPrimitives.ReadUInt32BigEndian(s),
        Version = BinaryPrimitives.ReadUInt32BigEndian(s[4..]),
        BackingFileOffset = BinaryPrimitives.ReadUInt64BigEndian(s[BackingFileOffsetOffset..]),
        BackingFileSize = BinaryPrimitives.ReadUInt32BigEndian(s[BackingFileSizeOffset..]),
        Mtime = BinaryPrimitives.ReadUInt32BigEndian(s[MtimeOffset..]),
        DiskSize = BinaryPrimitives.ReadUInt64BigEndian(s[SizeOffset..]),
        ClusterBits = s[ClusterBitsOffset],
        L2Bits = s[L2BitsOffset],
        CryptMethod = BinaryPrimitives.ReadUInt32BigEndian(s[CryptMethodOffset..]),
        L1TableOffset = BinaryPrimitives.ReadUInt64BigEndian(s[L1TableOffsetOffset..]),
    };

    public void Write(Span<byte> s)
    {
        s[..Size].Clear();
        BinaryPrimitives.WriteUInt32BigEndian(s, Magic);
        BinaryPrimitives.WriteUInt32BigEndian(s[4..], Version);
        BinaryPrimitives.WriteUInt64BigEndian(s[BackingFileOffsetOffset..], BackingFileOffset);
        BinaryPrimitives.WriteUInt32BigEndian(s[BackingFileSizeOffset..], BackingFileSize);
        BinaryPrimitives.WriteUInt32BigEndian(s[MtimeOffset..], Mtime);
        BinaryPrimitives.WriteUInt64BigEndian(s[SizeOffset..], DiskSize);
        s[ClusterBitsOffset] = ClusterBits;
        s[L2BitsOffset] = L2Bits;
        BinaryPrimitives.WriteUInt32BigEndian(s[CryptMethodOffset..], CryptMethod);
        BinaryPrimitives.WriteUInt64BigEndian(s[L1TableOffsetOffset..], L1TableOffset);
    }
}
