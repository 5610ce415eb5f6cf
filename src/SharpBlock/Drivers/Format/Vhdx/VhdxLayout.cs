using System.Buffers.Binary;
using System.IO.Hashing;

namespace SharpBlock.Drivers.Format.Vhdx;

/// <summary>
/// Where the fixed structures of a VHDX file sit, the signatures and GUIDs that name them, and the limits
/// QEMU puts on the values an image may hold (each bounds an allocation or an overflow a hostile image could
/// cause). Every multi-byte field of the format is little-endian.
/// </summary>
/// <remarks>
/// <code>
///   0      64K      128K     192K       256K       320K      1M
///   | file id | header 1 | header 2 | region 1 | region 2 | ... | log | BAT | metadata | payload blocks ...
/// </code>
/// </remarks>
internal static class VhdxLayout
{
    public const long KiB = 1024;
    public const long MiB = 1024 * KiB;

    /// <summary>"vhdxfile": the first eight bytes of every image, and what the probe looks for.</summary>
    public static ReadOnlySpan<byte> FileSignature => "vhdxfile"u8;

    public const long FileIdentifierOffset = 0;
    public const int CreatorOffset = 8;
    public const int CreatorBytes = 512;
    public const long Header1Offset = 64 * KiB;
    public const long Header2Offset = Header1Offset + (64 * KiB);
    public const long RegionTable1Offset = Header2Offset + (64 * KiB);
    public const long RegionTable2Offset = RegionTable1Offset + (64 * KiB);

    /// <summary>The header section (file identifier, headers, region tables and reserved space) ends at 1 MiB.</summary>
    public const long HeaderSectionEnd = MiB;

    /// <summary>Each header's checksum covers 4 KiB, each region table's 64 KiB.</summary>
    public const int HeaderSize = 4096;
    public const int RegionTableSize = 64 * 1024;

    /// <summary>The metadata table (header and entries) takes the first 64 KiB of the metadata region.</summary>
    public const int MetadataTableSize = 64 * 1024;

    /// <summary>The spec's cap on region and metadata entries: 2047 entries of 32 bytes fit their 64 KiB tables.</summary>
    public const int MaxTableEntries = 2047;

    public const uint HeaderSignature = 0x64616568; // "head"
    public const uint RegionSignature = 0x69676572; // "regi"
    public const ulong MetadataSignature = 0x617461646174656D; // "metadata"
    public const uint LogEntrySignature = 0x65676F6C; // "loge"
    public const uint LogDataDescriptorSignature = 0x63736564; // "desc"
    public const uint LogZeroDescriptorSignature = 0x6F72657A; // "zero"
    public const uint LogDataSectorSignature = 0x61746164; // "data"

    public const ushort Version = 1;
    public const ushort LogVersion = 0;

    /// <summary>The log is a ring of 4 KiB sectors; its offset and length are whole MiBs.</summary>
    public const int LogSectorSize = 4096;
    public const long LogMinSize = MiB;

    /// <summary>Payload blocks: a power of two from 1 MiB to 256 MiB, as the spec and QEMU allow.</summary>
    public const long MinBlockSize = MiB;
    public const long MaxBlockSize = 256 * MiB;

    /// <summary>A sector bitmap block maps 2^23 sectors, which fixes how many payload entries share one (the chunk ratio).</summary>
    public const long SectorsPerBitmapBlock = 1L << 23;

    /// <summary>QEMU refuses to create disks above 64 TiB; we refuse to open them too, which bounds the BAT in memory.</summary>
    public const long MaxVirtualSize = 64L * 1024 * 1024 * MiB;

    /// <summary>What qemu-img picks for block_size=0, by virtual size.</summary>
    public static long DefaultBlockSize(long size) => size switch
    {
        > 32L * 1024 * 1024 * MiB => 64 * MiB,
        > 100L * 1024 * MiB => 32 * MiB,
        > 1024 * MiB => 16 * MiB,
        _ => 8 * MiB,
    };

    public const long DefaultLogSize = MiB;

    public static readonly Guid BatRegion = new("2DC27766-F623-4200-9D64-115E9BFD4A08");
    public static readonly Guid MetadataRegion = new("8B7CA206-4790-4B9A-B8FE-575F050F886E");

    public static readonly Guid FileParametersItem = new("CAA16737-FA36-4D43-B3B6-33F0AA44E76B");
    public static readonly Guid VirtualDiskSizeItem = new("2FA54224-CD1B-4876-B211-5DBED83BF4B8");
    public static readonly Guid Page83Item = new("BECA12AB-B2E6-4523-93EF-C309E000C746");
    public static readonly Guid LogicalSectorSizeItem = new("8141BF1D-A96F-4709-BA47-F233A8FAAB5F");
    public static readonly Guid PhysicalSectorSizeItem = new("CDA348C7-445D-4471-9CC9-E9885251C556");
    public static readonly Guid ParentLocatorItem = new("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C");

    /// <summary>Region and metadata entries flag what a reader must understand to open the file.</summary>
    public const uint RegionRequired = 1;
    public const uint MetadataIsUser = 1;
    public const uint MetadataIsVirtualDisk = 2;
    public const uint MetadataIsRequired = 4;

    /// <summary>File parameters flags.</summary>
    public const uint LeaveBlocksAllocated = 1;
    public const uint HasParent = 2;

    /// <summary>
    /// CRC-32C (Castagnoli) over a structure with its own 4-byte checksum field taken as zero, as every
    /// checksummed VHDX structure is computed.
    /// </summary>
    public static uint Checksum(ReadOnlySpan<byte> data, int checksumOffset)
    {
        var crc = new Crc32(Crc32ParameterSet.Crc32C);
        crc.Append(data[..checksumOffset]);
        crc.Append([0, 0, 0, 0]);
        crc.Append(data[(checksumOffset + 4)..]);
        return crc.GetCurrentHashAsUInt32();
    }

    public static bool ChecksumValid(ReadOnlySpan<byte> data, int checksumOffset) =>
        BinaryPrimitives.ReadUInt32LittleEndian(data[checksumOffset..]) == Checksum(data, checksumOffset);

    /// <summary>Computes the checksum of a structure and stores it in its field.</summary>
    public static void Seal(Span<byte> data, int checksumOffset)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(data[checksumOffset..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(data[checksumOffset..], Checksum(data, checksumOffset));
    }

    public static long RoundUp(long value, long unit) => (value + unit - 1) / unit * unit;
}
