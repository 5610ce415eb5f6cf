namespace SharpBlock.Copy;

/// <summary>What convert copies and how; the image tool's convert options are named beside each field.</summary>
public sealed record ConvertSettings
{
    /// <summary>-m: workers copying at once.</summary>
    public int Streams { get; init; } = 8;

    /// <summary>-W: writes may reach the target in any order.</summary>
    public bool OutOfOrder { get; init; }

    /// <summary>-c: whole clusters go through the target's compressed writes.</summary>
    public bool Compress { get; init; }

    /// <summary>-S: zero runs at least this long are not written; 0 writes every byte.</summary>
    public long MinSparse { get; init; } = 4096;

    /// <summary>-B: the target's backing file stands in for the source's backing chain.</summary>
    public bool TopOnly { get; init; }

    /// <summary>The target reads as zeros before the copy (freshly created, or --target-is-zero).</summary>
    public bool TargetIsZero { get; init; }

    /// <summary>Where progress goes (the -p bar); null for none.</summary>
    public ICopyProgress? Progress { get; init; }
}
