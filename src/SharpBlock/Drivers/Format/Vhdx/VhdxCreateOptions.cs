namespace SharpBlock.Drivers.Format.Vhdx;

/// <summary>What a new vhdx image is made with, after qemu-img's rounding.</summary>
public sealed record VhdxCreateOptions
{
    public required long Size { get; init; }

    /// <summary>The log size in bytes (qemu-img refuses 4 GiB or more, and anything not a multiple of 1 MiB after rounding up).</summary>
    public ulong LogSize { get; init; } = (ulong)VhdxLayout.DefaultLogSize;

    /// <summary>The payload block size in bytes.</summary>
    public ulong BlockSize { get; init; }

    public bool Fixed { get; init; }

    public bool BlockStateZero { get; init; } = true;

    /// <summary>
    /// qemu-img rounds silently before it checks: the size up to 512 bytes, the log and block sizes up to
    /// 1 MiB, block_size=0 to the automatic choice and a block size past 256 MiB down to 256 MiB.
    /// </summary>
    public static VhdxCreateOptions FromGiven(long size, ulong? logSize, ulong? blockSize, bool isFixed, bool blockStateZero)
    {
        long rounded = size > long.MaxValue - 511 ? size : (size + 511) & ~511L;
        ulong log = logSize is { } l ? RoundUpMiB(l) : (ulong)VhdxLayout.DefaultLogSize;
        ulong block = blockSize is { } b ? RoundUpMiB(b) : 0;
        if (block > (ulong)VhdxLayout.MaxBlockSize)
            block = (ulong)VhdxLayout.MaxBlockSize;
        if (block == 0)
            block = (ulong)VhdxLayout.DefaultBlockSize(rounded);
        return new VhdxCreateOptions { Size = rounded, LogSize = log, BlockSize = block, Fixed = isFixed, BlockStateZero = blockStateZero };
    }

    private static ulong RoundUpMiB(ulong v) => v > ulong.MaxValue - (ulong)VhdxLayout.MiB ? v : (v + (ulong)VhdxLayout.MiB - 1) & ~((ulong)VhdxLayout.MiB - 1);
}
