using SharpBlock.Errors;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Filter.Blkdebug;

/// <summary>An inject-error rule: when its event fires in its state, matching requests fail with its errno.</summary>
internal sealed class BlkdebugInjectRule
{
    public required BlkdebugEvent Event { get; init; }

    /// <summary>The state the rule fires in; 0 means any state.</summary>
    public int State { get; init; }

    public Errno Errno { get; init; } = Errno.EIO;

    /// <summary>The 512-byte sector a request must touch to fail; -1 means any request.</summary>
    public long Sector { get; init; } = -1;

    public bool Once { get; init; }

    public bool Immediately { get; init; }

    /// <summary>True when a request over [offset, offset+length) is one this rule fails.</summary>
    public bool Matches(long offset, long length)
    {
        if (Sector < 0)
            return true;
        // A request without bytes (a flush) cannot touch a sector, so sector rules never fail it.
        long at = Sector * 512;
        return length > 0 && at < offset + length && offset < at + 512;
    }
}

/// <summary>A set-state rule: when its event fires in its state, the filter moves to a new state.</summary>
internal sealed class BlkdebugStateRule
{
    public required BlkdebugEvent Event { get; init; }

    /// <summary>The state the rule fires in; 0 means any state.</summary>
    public int State { get; init; }

    public required int NewState { get; init; }
}
