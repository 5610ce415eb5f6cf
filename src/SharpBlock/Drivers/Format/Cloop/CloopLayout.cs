namespace SharpBlock.Drivers.Format.Cloop;

/// <summary>
/// Where a cloop V2 image keeps its fields and the limits QEMU 7.2 puts on them.
/// <code>
///   0   preamble: a shell script ("#!/bin/sh\n#V2.0 Format\n..."), NUL padded
///   128 block_size   u32 BE   bytes of one uncompressed block
///   132 n_blocks     u32 BE   blocks in the image
///   136 offsets      u64 BE × (n_blocks + 1): block i is the zlib stream in [offsets[i], offsets[i+1])
/// </code>
/// </summary>
internal static class CloopLayout
{
    /// <summary>The script QEMU looks for at byte 0 before it calls a file cloop.</summary>
    public static ReadOnlySpan<byte> Magic => "#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n"u8;

    /// <summary>QEMU's probe score for the magic: low, a shell script is not much of a signature.</summary>
    public const int ProbeScore = 2;

    public const int HeaderOffset = 128;
    public const int BlockSizeOffset = HeaderOffset;
    public const int BlockCountOffset = BlockSizeOffset + 4;
    public const int OffsetsOffset = BlockCountOffset + 4;
    public const int HeaderEnd = OffsetsOffset;

    public const int SectorSize = 512;

    /// <summary>One block is decompressed into a buffer this big; QEMU's bound on it stops a 4 GiB allocation.</summary>
    public const uint MaxBlockSize = 64u << 20;

    /// <summary>A compressed block larger than this is damage (zlib never grows data that much).</summary>
    public const ulong MaxCompressedBlockSize = 2UL * MaxBlockSize;

    /// <summary>QEMU's bound on n_blocks, so that the table's byte count fits in 32 bits.</summary>
    public const uint MaxBlocks = (uint.MaxValue - 1) / 8;

    /// <summary>QEMU's bound on the offset table it reads into memory.</summary>
    public const long MaxOffsetsBytes = 512L << 20;
}
