using System.Buffers.Binary;

namespace SharpBlock.Drivers.Format.Dmg;

/// <summary>
/// A block table ("mish", BLKX): a 204-byte header, then 40-byte chunk entries; each entry's sectors count
/// from the table's first sector, its bytes from the table's data offset.
/// <code>
///   0 "mish"  4 version u32  8 first_sector u64  16 sector_count u64  24 data_offset u64  ...  200 chunk_count u32
/// </code>
/// </summary>
internal readonly record struct DmgMish(uint Signature, ulong FirstSector, ulong SectorCount, ulong DataOffset, uint ChunkCount)
{
    public const int Size = 204;
    public const int FirstSectorOffset = 8;
    public const int SectorCountOffset = 16;
    public const int DataOffsetOffset = 24;
    public const int ChunkCountOffset = 200;

    public static DmgMish Read(ReadOnlySpan<byte> b) => new(
        BinaryPrimitives.ReadUInt32BigEndian(b),
        BinaryPrimitives.ReadUInt64BigEndian(b[FirstSectorOffset..]),
        BinaryPrimitives.ReadUInt64BigEndian(b[SectorCountOffset..]),
        BinaryPrimitives.ReadUInt64BigEndian(b[DataOffsetOffset..]),
        BinaryPrimitives.ReadUInt32BigEndian(b[ChunkCountOffset..]));

    public void Write(Span<byte> b)
    {
        b[..Size].Clear();
        BinaryPrimitives.WriteUInt32BigEndian(b, Signature);
        BinaryPrimitives.WriteUInt32BigEndian(b[4..], 1);
        BinaryPrimitives.WriteUInt64BigEndian(b[FirstSectorOffset..], FirstSector);
        BinaryPrimitives.WriteUInt64BigEndian(b[SectorCountOffset..], SectorCount);
        BinaryPrimitives.WriteUInt64BigEndian(b[DataOffsetOffset..], DataOffset);
        BinaryPrimitives.WriteUInt32BigEndian(b[ChunkCountOffset..], ChunkCount);
    }
}

/// <summary>One 40-byte chunk entry of a mish table: type, comment, sector, sector count, stored offset and length.</summary>
internal readonly record struct DmgChunkEntry(uint Type, ulong Sector, ulong SectorCount, ulong Offset, ulong Length)
{
    public const int Size = 40;

    public static DmgChunkEntry Read(ReadOnlySpan<byte> b) => new(
        BinaryPrimitives.ReadUInt32BigEndian(b),
        BinaryPrimitives.ReadUInt64BigEndian(b[8..]),
        BinaryPrimitives.ReadUInt64BigEndian(b[16..]),
        BinaryPrimitives.ReadUInt64BigEndian(b[24..]),
        BinaryPrimitives.ReadUInt64BigEndian(b[32..]));

    public void Write(Span<byte> b)
    {
        b[..Size].Clear();
        BinaryPrimitives.WriteUInt32BigEndian(b, Type);
        BinaryPrimitives.WriteUInt64BigEndian(b[8..], Sector);
        BinaryPrimitives.WriteUInt64BigEndian(b[16..], SectorCount);
        BinaryPrimitives.WriteUInt64BigEndian(b[24..], Offset);
        BinaryPrimitives.WriteUInt64BigEndian(b[32..], Length);
    }
}
