using System.Buffers.Binary;

namespace SharpBlock.Drivers.Format.Vhdx;

/// <summary>
/// The metadata table at the start of the metadata region: which items exist and where (relative to the region).
/// </summary>
/// <remarks>
/// <code>
///   0  signature "metadata"   8  reserved (u16)   10  entry count (u16, at most 2047)   12  reserved (20 bytes)
///  32  entries of 32 bytes (VhdxMetadataEntry)
/// </code>
/// </remarks>
internal readonly struct VhdxMetadataTable
{
    public const int SignatureOffset = 0;
    public const int EntryCountOffset = SignatureOffset + 10;
    public const int EntriesOffset = 32;
    public const int Size = VhdxLayout.MetadataTableSize;

    public ulong Signature { get; init; }
    public ushort EntryCount { get; init; }
    public VhdxMetadataEntry[] Entries { get; init; }

    public static VhdxMetadataTable Read(ReadOnlySpan<byte> b)
    {
        ushort count = BinaryPrimitives.ReadUInt16LittleEndian(b[EntryCountOffset..]);
        var entries = count <= VhdxLayout.MaxTableEntries ? new VhdxMetadataEntry[count] : [];
        for (int i = 0; i < entries.Length; i++)
            entries[i] = VhdxMetadataEntry.Read(b[(EntriesOffset + (i * VhdxMetadataEntry.Size))..]);
        return new VhdxMetadataTable
        {
            Signature = BinaryPrimitives.ReadUInt64LittleEndian(b[SignatureOffset..]),
            EntryCount = count,
            Entries = entries,
        };
    }

    public void Write(Span<byte> b)
    {
        b[..Size].Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(b[SignatureOffset..], Signature);
        BinaryPrimitives.WriteUInt16LittleEndian(b[EntryCountOffset..], (ushort)Entries.Length);
        for (int i = 0; i < Entries.Length; i++)
            Entries[i].Write(b[(EntriesOffset + (i * VhdxMetadataEntry.Size))..]);
    }
}

/// <summary>
/// One metadata table entry.
/// <code>
///   0  item GUID   16  offset in the region (u32, at least 64 KiB)   20  length (u32)   24  flags   28  reserved
/// </code>
/// </summary>
internal readonly struct VhdxMetadataEntry
{
    public const int ItemIdOffset = 0;
    public const int OffsetOffset = ItemIdOffset + 16;
    public const int LengthOffset = OffsetOffset + 4;
    public const int FlagsOffset = LengthOffset + 4;
    public const int Size = FlagsOffset + 8;

    public Guid ItemId { get; init; }
    public uint Offset { get; init; }
    public uint Length { get; init; }
    public uint Flags { get; init; }

    public static VhdxMetadataEntry Read(ReadOnlySpan<byte> b) => new()
    {
        ItemId = new Guid(b.Slice(ItemIdOffset, 16)),
        Offset = BinaryPrimitives.ReadUInt32LittleEndian(b[OffsetOffset..]),
        Length = BinaryPrimitives.ReadUInt32LittleEndian(b[LengthOffset..]),
        Flags = BinaryPrimitives.ReadUInt32LittleEndian(b[FlagsOffset..]),
    };

    public void Write(Span<byte> b)
    {
        ItemId.TryWriteBytes(b.Slice(ItemIdOffset, 16));
        BinaryPrimitives.WriteUInt32LittleEndian(b[OffsetOffset..], Offset);
        BinaryPrimitives.WriteUInt32LittleEndian(b[LengthOffset..], Length);
        BinaryPrimitives.WriteUInt32LittleEndian(b[FlagsOffset..], Flags);
        BinaryPrimitives.WriteUInt32LittleEndian(b[(FlagsOffset + 4)..], 0);
    }
}
