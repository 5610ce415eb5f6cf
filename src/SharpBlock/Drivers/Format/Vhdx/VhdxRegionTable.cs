using System.Buffers.Binary;

namespace SharpBlock.Drivers.Format.Vhdx;

/// <summary>
/// The region table (two copies, at 192 KiB and 256 KiB): where the BAT and the metadata region lie.
/// </summary>
/// <remarks>
/// <code>
///   0  signature "regi"   4  checksum (CRC-32C over 64 KiB)   8  entry count (u32, at most 2047)
///  12  reserved          16  entries of 32 bytes (VhdxRegionEntry)
/// </code>
/// </remarks>
internal readonly struct VhdxRegionTable
{
    public const int SignatureOffset = 0;
    public const int ChecksumOffset = SignatureOffset + 4;
    public const int EntryCountOffset = ChecksumOffset + 4;
    public const int EntriesOffset = EntryCountOffset + 8;
    public const int Size = VhdxLayout.RegionTableSize;

    public uint Signature { get; init; }
    public uint EntryCount { get; init; }
    public VhdxRegionEntry[] Entries { get; init; }

    /// <summary>Reads the table; entries only when the count fits the 64 KiB (the caller refuses the rest).</summary>
    public static VhdxRegionTable Read(ReadOnlySpan<byte> b)
    {
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(b[EntryCountOffset..]);
        var entries = count <= VhdxLayout.MaxTableEntries ? new VhdxRegionEntry[count] : [];
        for (int i = 0; i < entries.Length; i++)
            entries[i] = VhdxRegionEntry.Read(b[(EntriesOffset + (i * VhdxRegionEntry.Size))..]);
        return new VhdxRegionTable
        {
            Signature = BinaryPrimitives.ReadUInt32LittleEndian(b[SignatureOffset..]),
            EntryCount = count,
            Entries = entries,
        };
    }

    public void Write(Span<byte> b)
    {
        b[..Size].Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(b[SignatureOffset..], Signature);
        BinaryPrimitives.WriteUInt32LittleEndian(b[EntryCountOffset..], (uint)Entries.Length);
        for (int i = 0; i < Entries.Length; i++)
            Entries[i].Write(b[(EntriesOffset + (i * VhdxRegionEntry.Size))..]);
        VhdxLayout.Seal(b[..Size], ChecksumOffset);
    }
}

/// <summary>
/// One region table entry.
/// <code>
///   0  GUID   16  file offset (u64, 1 MiB aligned)   24  length (u32, 1 MiB multiple)   28  flags (bit 0: required)
/// </code>
/// </summary>
internal readonly struct VhdxRegionEntry
{
    public const int GuidOffset = 0;
    public const int FileOffsetOffset = GuidOffset + 16;
    public const int LengthOffset = FileOffsetOffset + 8;
    public const int FlagsOffset = LengthOffset + 4;
    public const int Size = FlagsOffset + 4;

    public Guid Guid { get; init; }
    public ulong FileOffset { get; init; }
    public uint Length { get; init; }
    public uint Flags { get; init; }

    public static VhdxRegionEntry Read(ReadOnlySpan<byte> b) => new()
    {
        Guid = new Guid(b.Slice(GuidOffset, 16)),
        FileOffset = BinaryPrimitives.ReadUInt64LittleEndian(b[FileOffsetOffset..]),
        Length = BinaryPrimitives.ReadUInt32LittleEndian(b[LengthOffset..]),
        Flags = BinaryPrimitives.ReadUInt32LittleEndian(b[FlagsOffset..]),
    };

    public void Write(Span<byte> b)
    {
        Guid.TryWriteBytes(b.Slice(GuidOffset, 16));
        BinaryPrimitives.WriteUInt64LittleEndian(b[FileOffsetOffset..], FileOffset);
        BinaryPrimitives.WriteUInt32LittleEndian(b[LengthOffset..], Length);
        BinaryPrimitives.WriteUInt32LittleEndian(b[FlagsOffset..], Flags);
    }
}
