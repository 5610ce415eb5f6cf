namespace SharpBlock.Drivers.Format.Qcow;

/// <summary>qcow version 1 constants, and the limits QEMU 7.2 puts on them.</summary>
public static class QcowLayout
{
    /// <summary>"QFI\xfb", big-endian at byte 0: the same magic as qcow2, so the version field tells them apart.</summary>
    public const uint Magic = 0x514649fb;

    public const uint Version = 1;

    public const uint CryptNone = 0;
    public const uint CryptAes = 1;

    /// <summary>Cluster sizes QEMU accepts: 512 bytes to 64 KiB.</summary>
    public const int MinClusterBits = 9;
    public const int MaxClusterBits = 16;

    /// <summary>L2 tables QEMU accepts: 512 bytes to 64 KiB of 8-byte entries.</summary>
    public const int MinL2Bits = 6;
    public const int MaxL2Bits = 13;

    /// <summary>What qemu-img create chooses: 4 KiB clusters and 4 KiB L2 tables, or 512-byte clusters (no copying of unmodified sectors) and 32 KiB L2 tables over a backing file.</summary>
    public const int DefaultClusterBits = 12;
    public const int DefaultL2Bits = 9;
    public const int BackingClusterBits = 9;
    public const int BackingL2Bits = 12;

    /// <summary>QEMU refuses a backing file name of 1024 bytes or more.</summary>
    public const int MaxBackingNameLength = 1023;

    /// <summary>The L1 table must fit an int-sized allocation of 8-byte entries (QEMU's INT_MAX / 8).</summary>
    public const long MaxL1Entries = int.MaxValue / 8;

    /// <summary>Bit 63 of an L2 entry: the cluster is a raw deflate stream whose length sits in the bits below.</summary>
    public const ulong CompressedFlag = 1UL << 63;

    public const int SectorSize = 512;
}
