using SharpBlock.Schema;

namespace SharpBlock.Graph;

/// <summary>
/// The BlockdevOptionsBase fields that shape a node's I/O, resolved against what the parent passed down
/// (children inherit cache, discard and read-only unless they say otherwise, as in QEMU).
/// </summary>
public sealed record NodeSettings
{
    public bool ReadOnly { get; init; }
    public bool Direct { get; init; }
    public bool NoFlush { get; init; }
    public bool Writeback { get; init; } = true;
    public BlockdevDiscardOptions Discard { get; init; } = BlockdevDiscardOptions.Ignore;
    public BlockdevDetectZeroesOptions DetectZeroes { get; init; } = BlockdevDetectZeroesOptions.Off;
    public BlockdevAioOptions Aio { get; init; } = BlockdevAioOptions.Threads;

    /// <summary>A read-only node that lets other processes write the file meanwhile (qemu-img -U).</summary>
    public bool ForceShare { get; init; }

    /// <summary>
    /// Opened by a repairing check (img check -r, QEMU's check flag): a format that refuses to write an image
    /// left unclean lets it open, so that the check itself can repair it.
    /// </summary>
    public bool ForCheck { get; init; }

    public static NodeSettings Default { get; } = new();

    /// <summary>Applies the options given for one node on top of what its parent passes down.</summary>
    public NodeSettings Apply(BlockdevOptionsBase o) => this with
    {
        ReadOnly = o.ReadOnly ?? ReadOnly,
        ForceShare = o.ForceShare ?? ForceShare,
        Direct = o.Cache?.Direct ?? Direct,
        NoFlush = o.Cache?.NoFlush ?? NoFlush,
        Writeback = o.Cache?.Writeback ?? Writeback,
        Discard = o.Discard ?? Discard,
        // detect-zeroes is a property of the node it is given on; children start from off.
        DetectZeroes = o.DetectZeroes ?? BlockdevDetectZeroesOptions.Off,
        Aio = o.Aio ?? Aio,
    };
}
