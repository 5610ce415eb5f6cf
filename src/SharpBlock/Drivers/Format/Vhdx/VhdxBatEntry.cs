namespace SharpBlock.Drivers.Format.Vhdx;

/// <summary>The states a BAT entry can give a payload block (bits 0-2); sector bitmap entries use NotPresent and FullyPresent (6).</summary>
internal enum VhdxBlockState
{
    NotPresent = 0,
    Undefined = 1,
    Zero = 2,
    Unmapped = 3,
    FullyPresent = 6,
    PartiallyPresent = 7,
}

/// <summary>
/// One BAT entry (u64): state in bits 0-2, reserved bits 3-19, the file offset in MiB in bits 20-63.
/// Payload entries come in chunks of chunk-ratio entries, each chunk followed by one sector bitmap entry.
/// </summary>
internal readonly struct VhdxBatEntry(ulong raw)
{
    public const int Size = 8;
    private const ulong StateMask = 7;
    private const ulong OffsetMask = ~((1UL << 20) - 1);

    public ulong Raw { get; } = raw;

    public VhdxBlockState State => (VhdxBlockState)(Raw & StateMask);

    /// <summary>The block's byte offset in the file (FileOffsetMB shifted into place).</summary>
    public long FileOffset => (long)(Raw & OffsetMask);

    /// <summary>QEMU keeps no offset in an entry that holds none (Hyper-V refuses reserved bits set in a ZERO entry).</summary>
    public static VhdxBatEntry Of(VhdxBlockState state, long fileOffset) =>
        new(state == VhdxBlockState.FullyPresent || state == VhdxBlockState.PartiallyPresent
            ? ((ulong)fileOffset & OffsetMask) | (ulong)state
            : (ulong)state);
}
