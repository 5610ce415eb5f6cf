using System.Buffers.Binary;

namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>
/// The fixed part of one snapshot table entry (entries are 8-byte aligned):
/// <code>
///  0 l1_table_offset 8 |  8 l1_size 4 | 12 id_str_size 2 | 14 name_size 2 | 16 date_sec 4 | 20 date_nsec 4
/// 24 vm_clock_nsec 8   | 32 vm_state_size 4 | 36 extra_data_size 4 | 40 extra data, id string, name, padding
/// </code>
/// Extra data (version 3 requires at least 16 bytes): vm_state_size_large 8, disk_size 8, icount 8.
/// </summary>
public readonly record struct Qcow2SnapshotHeader
{
    public const int Size = 40;
    public const int ExtraVmStateLarge = 0;
    public const int ExtraDiskSize = 8;
    public const int ExtraIcount = 16;

    public ulong L1TableOffset { get; init; }
    public uint L1Size { get; init; }
    public ushort IdSize { get; init; }
    public ushort NameSize { get; init; }
    public uint DateSec { get; init; }
    public uint DateNsec { get; init; }
    public ulong VmClockNsec { get; init; }
    public uint VmStateSize { get; init; }
    public uint ExtraDataSize { get; init; }

    public static Qcow2SnapshotHeader Read(ReadOnlySpan<byte> b) => new()
    {
        L1TableOffset = BinaryPrimitives.ReadUInt64BigEndian(b),
        L1Size = BinaryPrimitives.ReadUInt32BigEndian(b[8..]),
        IdSize = BinaryPrimitives.ReadUInt16BigEndian(b[12..]),
        NameSize = BinaryPrimitives.ReadUInt16BigEndian(b[14..]),
        DateSec = BinaryPrimitives.ReadUInt32BigEndian(b[16..]),
        DateNsec = BinaryPrimitives.ReadUInt32BigEndian(b[20..]),
        VmClockNsec = BinaryPrimitives.ReadUInt64BigEndian(b[24..]),
        VmStateSize = BinaryPrimitives.ReadUInt32BigEndian(b[32..]),
        ExtraDataSize = BinaryPrimitives.ReadUInt32BigEndian(b[36..]),
    };

    public void Write(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt64BigEndian(b, L1TableOffset);
        BinaryPrimitives.WriteUInt32BigEndian(b[8..], L1Size);
        BinaryPrimitives.WriteUInt16BigEndian(b[12..], IdSize);
        BinaryPrimitives.WriteUInt16BigEndian(b[14..], NameSize);
        BinaryPrimitives.WriteUInt32BigEndian(b[16..], DateSec);
        BinaryPrimitives.WriteUInt32BigEndian(b[20..], DateNsec);
        BinaryPrimitives.WriteUInt64BigEndian(b[24..], VmClockNsec);
        BinaryPrimitives.WriteUInt32BigEndian(b[32..], VmStateSize);
        BinaryPrimitives.WriteUInt32BigEndian(b[36..], ExtraDataSize);
    }
}

/// <summary>A snapshot as the driver keeps it in memory.</summary>
public sealed record Qcow2Snapshot
{
    public required string Id { get; init; }
    public required string Name { get; init; }
    public required long L1TableOffset { get; init; }
    public required int L1Size { get; init; }
    public long DateSec { get; init; }
    public long DateNsec { get; init; }
    public long VmClockNsec { get; init; }
    public long VmStateSize { get; init; }
    public long DiskSize { get; init; }
    public long Icount { get; init; } = -1;
    public byte[] ExtraData { get; init; } = [];
}
