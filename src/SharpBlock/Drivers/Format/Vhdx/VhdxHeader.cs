using System.Buffers.Binary;

namespace SharpBlock.Drivers.Format.Vhdx;

/// <summary>
/// One of the two headers (at 64 KiB and 128 KiB); the valid one with the higher sequence number is current.
/// </summary>
/// <remarks>
/// <code>
///   0  signature "head"     4  checksum (CRC-32C over 4 KiB)   8  sequence number (u64)
///  16  file write GUID     32  data write GUID                48  log GUID
///  64  log version (u16)   66  version (u16)                  68  log length (u32)
///  72  log offset (u64)    80  reserved to 4 KiB
/// </code>
/// </remarks>
internal readonly struct VhdxHeader
{
    public const int SignatureOffset = 0;
    public const int ChecksumOffset = SignatureOffset + 4;
    public const int SequenceNumberOffset = ChecksumOffset + 4;
    public const int FileWriteGuidOffset = SequenceNumberOffset + 8;
    public const int DataWriteGuidOffset = FileWriteGuidOffset + 16;
    public const int LogGuidOffset = DataWriteGuidOffset + 16;
    public const int LogVersionOffset = LogGuidOffset + 16;
    public const int VersionOffset = LogVersionOffset + 2;
    public const int LogLengthOffset = VersionOffset + 2;
    public const int LogOffsetOffset = LogLengthOffset + 4;
    public const int Size = VhdxLayout.HeaderSize;

    public uint Signature { get; init; }
    public ulong SequenceNumber { get; init; }
    public Guid FileWriteGuid { get; init; }
    public Guid DataWriteGuid { get; init; }
    public Guid LogGuid { get; init; }
    public ushort LogVersion { get; init; }
    public ushort Version { get; init; }
    public uint LogLength { get; init; }
    public ulong LogOffset { get; init; }

    /// <summary>Whether the 4 KiB at this slot hold a header QEMU would use: its checksum, signature and version 1.</summary>
    public static bool TryRead(ReadOnlySpan<byte> b, out VhdxHeader header)
    {
        header = Read(b);
        return VhdxLayout.ChecksumValid(b[..Size], ChecksumOffset) && header.Signature == VhdxLayout.HeaderSignature && header.Version == VhdxLayout.Version;
    }

    public static VhdxHeader Read(ReadOnlySpan<byte> b) => new()
    {
        Signature = BinaryPrimitives.ReadUInt32LittleEndian(b[SignatureOffset..]),
        SequenceNumber = BinaryPrimitives.ReadUInt64LittleEndian(b[SequenceNumberOffset..]),
        FileWriteGuid = new Guid(b.Slice(FileWriteGuidOffset, 16)),
        DataWriteGuid = new Guid(b.Slice(DataWriteGuidOffset, 16)),
        LogGuid = new Guid(b.Slice(LogGuidOffset, 16)),
        LogVersion = BinaryPrimitives.ReadUInt16LittleEndian(b[LogVersionOffset..]),
        Version = BinaryPrimitives.ReadUInt16LittleEndian(b[VersionOffset..]),
        LogLength = BinaryPrimitives.ReadUInt32LittleEndian(b[LogLengthOffset..]),
        LogOffset = BinaryPrimitives.ReadUInt64LittleEndian(b[LogOffsetOffset..]),
    };

    /// <summary>Writes the whole 4 KiB (reserved bytes zero) with its checksum.</summary>
    public void Write(Span<byte> b)
    {
        b[..Size].Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(b[SignatureOffset..], Signature);
        BinaryPrimitives.WriteUInt64LittleEndian(b[SequenceNumberOffset..], SequenceNumber);
        FileWriteGuid.TryWriteBytes(b.Slice(FileWriteGuidOffset, 16));
        DataWriteGuid.TryWriteBytes(b.Slice(DataWriteGuidOffset, 16));
        LogGuid.TryWriteBytes(b.Slice(LogGuidOffset, 16));
        BinaryPrimitives.WriteUInt16LittleEndian(b[LogVersionOffset..], LogVersion);
        BinaryPrimitives.WriteUInt16LittleEndian(b[VersionOffset..], Version);
        BinaryPrimitives.WriteUInt32LittleEndian(b[LogLengthOffset..], LogLength);
        BinaryPrimitives.WriteUInt64LittleEndian(b[LogOffsetOffset..], LogOffset);
        VhdxLayout.Seal(b[..Size], ChecksumOffset);
    }
}
