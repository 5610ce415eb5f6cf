using SharpBlock.Jobs;

namespace SharpBlock.Bitmaps;

/// <summary>
/// A dirty bitmap a user named on a node (block-dirty-bitmap-add, or loaded from a qcow2 image): every write
/// to the node marks it while it records, and incremental backup copies what it marks. The flags are the ones
/// QEMU reports and checks before a command may use or change it.
/// </summary>
public sealed class NamedDirtyBitmap
{
    internal NamedDirtyBitmap(string name, long length, long granularity, bool persistent, bool recording)
    {
        Name = name;
        Bits = new DirtyBitmap(length, granularity);
        Persistent = persistent;
        Recording = recording;
    }

    public string Name { get; }

    public DirtyBitmap Bits { get; }

    public long Granularity => Bits.Granularity;

    /// <summary>Stored in the image (qcow2) at flush and close, loaded again at the next open.</summary>
    public bool Persistent { get; internal set; }

    /// <summary>Writes mark it (QEMU's "enabled"; qcow2's "auto" flag).</summary>
    public bool Recording { get; internal set; }

    /// <summary>Held by an operation (a backup using it): commands may neither change nor remove it meanwhile.</summary>
    public bool Busy { get; internal set; }

    /// <summary>
    /// Loaded from an image that was not closed cleanly while the bitmap was in use: its bits may miss writes,
    /// so it may only be removed.
    /// </summary>
    public bool Inconsistent { get; internal set; }

    /// <summary>Loaded from an image opened read-only: it cannot be stored back, so its bits may not change.</summary>
    public bool ReadOnly { get; internal set; }

    /// <summary>Bytes marked dirty (whole chunks), as query-block's count.</summary>
    public long Count => Bits.DirtyChunkBytes;
}
