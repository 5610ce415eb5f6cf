using System.Buffers.Binary;

namespace SharpBlock.Drivers.Format.Vhdx;

/// <summary>
/// The header of one log entry, at the start of its first 4 KiB sector; descriptors follow it (126 in the
/// first sector, 128 in each further one), then one data sector per data descriptor.
/// </summary>
/// <remarks>
/// <code>
///   0  signature "loge"   4  checksum (CRC-32C over the whole entry)   8  entry length (u32, 4 KiB multiple)
///  12  tail (u32)        16  sequence number (u64, not 0)            24  descriptor count (u32)
///  28  reserved          32  log GUID (the header's)                  48  flushed file offset (u64)
///  56  last file offset (u64)
/// </code>
/// </remarks>
internal readonly struct VhdxLogEntryHeader
{
    public const int SignatureOffset = 0;
    public const int ChecksumOffset = SignatureOffset + 4;
    public const int EntryLengthOffset = ChecksumOffset + 4;
    public const int TailOffset = EntryLengthOffset + 4;
    public const int SequenceNumberOffset = TailOffset + 4;
    public const int DescriptorCountOffset = SequenceNumberOffset + 8;
    public const int LogGuidOffset = DescriptorCountOffset + 8;
    public const int FlushedFileOffsetOffset = LogGuidOffset + 16;
    public const int LastFileOffsetOffset = FlushedFileOffsetOffset + 8;
    public const int Size = LastFileOffsetOffset + 8;

    public uint Signature { get; init; }
    public uint Checksum { get; init; }
    public uint EntryLength { get; init; }
    public uint Tail { get; init; }
    public ulong SequenceNumber { get; init; }
    public uint DescriptorCount { get; init; }
    public Guid LogGuid { get; init; }
    public ulong FlushedFileOffset { get; init; }
    public ulong LastFileOffset { get; init; }

    /// <summary>Sectors the header and <paramref name="descriptors"/> descriptors take (at least one).</summary>
    public static int DescriptorSectors(uint descriptors) => (int)((descriptors + 2 + 127) / 128);

    public static VhdxLogEntryHeader Read(ReadOnlySpan<byte> b) => new()
    {
        Signature = BinaryPrimitives.ReadUInt32LittleEndian(b[SignatureOffset..]),
        Checksum = BinaryPrimitives.ReadUInt32LittleEndian(b[ChecksumOffset..]),
        EntryLength = BinaryPrimitives.ReadUInt32LittleEndian(b[EntryLengthOffset..]),
        Tail = BinaryPrimitives.ReadUInt32LittleEndian(b[TailOffset..]),
        SequenceNumber = BinaryPrimitives.ReadUInt64LittleEndian(b[SequenceNumberOffset..]),
        DescriptorCount = BinaryPrimitives.ReadUInt32LittleEndian(b[DescriptorCountOffset..]),
        LogGuid = new Guid(b.Slice(LogGuidOffset, 16)),
        FlushedFileOffset = BinaryPrimitives.ReadUInt64LittleEndian(b[FlushedFileOffsetOffset..]),
        LastFileOffset = BinaryPrimitives.ReadUInt64LittleEndian(b[LastFileOffsetOffset..]),
    };

    /// <summary>Writes the header fields; the checksum is sealed over the whole entry once it is complete.</summary>
    public void Write(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(b[SignatureOffset..], Signature);
        BinaryPrimitives.WriteUInt32LittleEndian(b[ChecksumOffset..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(b[EntryLengthOffset..], EntryLength);
        BinaryPrimitives.WriteUInt32LittleEndian(b[TailOffset..], Tail);
        BinaryPrimitives.WriteUInt64LittleEndian(b[SequenceNumberOffset..], SequenceNumber);
        BinaryPrimitives.WriteUInt32LittleEndian(b[DescriptorCountOffset..], DescriptorCount);
        BinaryPrimitives.WriteUInt32LittleEndian(b[(DescriptorCountOffset + 4)..], 0);
        LogGuid.TryWriteBytes(b.Slice(LogGuidOffset, 16));
        BinaryPrimitives.WriteUInt64LittleEndian(b[FlushedFileOffsetOffset..], FlushedFileOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(b[LastFileOffsetOffset..], LastFileOffset);
    }
}

/// <summary>
/// A log descriptor (32 bytes): a data descriptor ("desc") names one 4 KiB file sector whose middle 4084 bytes
/// are in the matching data sector and whose first 8 and last 4 bytes are here; a zero descriptor ("zero")
/// names a run of zeroed bytes.
/// <code>
///   0  signature   4  trailing bytes (u32) | reserved   8  leading bytes (u64) | zero length (u64)
///  16  file offset (u64, 4 KiB aligned)                24  sequence number (u64)
/// </code>
/// </summary>
internal readonly struct VhdxLogDescriptor
{
    public const int SignatureOffset = 0;
    public const int TrailingBytesOffset = SignatureOffset + 4;
    public const int LeadingBytesOffset = TrailingBytesOffset + 4;
    public const int FileOffsetOffset = LeadingBytesOffset + 8;
    public const int SequenceNumberOffset = FileOffsetOffset + 8;
    public const int Size = SequenceNumberOffset + 8;

    /// <summary>A data sector: "data", the high half of the sequence number, 4084 bytes, the low half.</summary>
    public const int DataSectorPayloadOffset = 8;
    public const int DataSectorPayload = 4084;
    public const int DataSectorSequenceLowOffset = DataSectorPayloadOffset + DataSectorPayload;

    public uint Signature { get; init; }
    public uint TrailingBytes { get; init; }

    /// <summary>The leading 8 bytes of a data sector, or the zero length of a zero descriptor.</summary>
    public ulong LeadingBytes { get; init; }
    public ulong FileOffset { get; init; }
    public ulong SequenceNumber { get; init; }

    public static VhdxLogDescriptor Read(ReadOnlySpan<byte> b) => new()
    {
        Signature = BinaryPrimitives.ReadUInt32LittleEndian(b[SignatureOffset..]),
        TrailingBytes = BinaryPrimitives.ReadUInt32LittleEndian(b[TrailingBytesOffset..]),
        LeadingBytes = BinaryPrimitives.ReadUInt64LittleEndian(b[LeadingBytesOffset..]),
        FileOffset = BinaryPrimitives.ReadUInt64LittleEndian(b[FileOffsetOffset..]),
        SequenceNumber = BinaryPrimitives.ReadUInt64LittleEndian(b[SequenceNumberOffset..]),
    };

    public void Write(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(b[SignatureOffset..], Signature);
        BinaryPrimitives.WriteUInt32LittleEndian(b[TrailingBytesOffset..], TrailingBytes);
        BinaryPrimitives.WriteUInt64LittleEndian(b[LeadingBytesOffset..], LeadingBytes);
        BinaryPrimitives.WriteUInt64LittleEndian(b[FileOffsetOffset..], FileOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(b[SequenceNumberOffset..], SequenceNumber);
    }
}
