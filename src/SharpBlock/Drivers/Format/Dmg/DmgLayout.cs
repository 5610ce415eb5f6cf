namespace SharpBlock.Drivers.Format.Dmg;

/// <summary>Magic numbers, chunk types and QEMU 7.2's limits for Apple disk images (UDIF).</summary>
internal static class DmgLayout
{
    public const uint KolyMagic = 0x6b6f6c79; // "koly"
    public const uint MishMagic = 0x6d697368; // "mish"

    public const int SectorSize = 512;

    /// <summary>The trailer is 512 bytes, but QEMU looks for its magic in the last 515 bytes (odd file sizes).</summary>
    public const int KolySearch = 515;

    public const uint ChunkZero = 0x00000000;       // UDZE: zeros
    public const uint ChunkRaw = 0x00000001;        // UDRW: stored as is
    public const uint ChunkIgnore = 0x00000002;     // UDIG: reads as zeros
    public const uint ChunkAdc = 0x80000004;        // UDCO: not read by QEMU
    public const uint ChunkZlib = 0x80000005;       // UDZO
    public const uint ChunkBzip2 = 0x80000006;      // UDBZ
    public const uint ChunkLzfse = 0x80000007;      // ULFO: not read here
    public const uint ChunkComment = 0x7ffffffe;
    public const uint ChunkTerminator = 0xffffffff;

    /// <summary>QEMU's bound on one chunk's stored bytes, and so on the buffer a read allocates.</summary>
    public const ulong MaxChunkLength = 64UL << 20;

    /// <summary>QEMU's bound on one data chunk's sectors (its decompressed buffer).</summary>
    public const ulong MaxChunkSectors = MaxChunkLength / SectorSize;

    /// <summary>Beyond QEMU: the plist or resource fork read into memory whole; real ones are kilobytes.</summary>
    public const ulong MaxMetadataLength = 64UL << 20;

    /// <summary>The resource fork's data starts this far into it, as QEMU reads it.</summary>
    public const int ResourceDataOffset = 0x100;

    public static bool IsKnownType(uint type) =>
        type is ChunkZero or ChunkRaw or ChunkIgnore or ChunkZlib or ChunkBzip2;

    public static bool IsZeroType(uint type) => type is ChunkZero or ChunkIgnore;
}
