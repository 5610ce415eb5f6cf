namespace SharpBlock.Drivers;

/// <summary>What a check may repair: nothing, leaked clusters only, or everything (qemu-img check -r).</summary>
public enum ImageCheckMode
{
    None,
    Leaks,
    All,
}

/// <summary>The counts a consistency check reports (the fields of QAPI ImageCheck).</summary>
public sealed class ImageCheckResult
{
    public long CheckErrors { get; set; }
    public long Corruptions { get; set; }
    public long Leaks { get; set; }
    public long CorruptionsFixed { get; set; }
    public long LeaksFixed { get; set; }
    public long ImageEndOffset { get; set; }
    public long TotalClusters { get; set; }
    public long AllocatedClusters { get; set; }
    public long FragmentedClusters { get; set; }
    public long CompressedClusters { get; set; }

    /// <summary>
    /// Of the corruptions, those that lose data on the next write: a refcount below the references (the
    /// cluster can be handed out twice) or a copied flag on a cluster that really is shared. The others
    /// (a stale copied flag on a cluster that is not shared) are the harmless windows a crash can leave.
    /// </summary>
    public long UnsafeCorruptions { get; set; }
}

/// <summary>A format that can check its own metadata and repair it (qemu-img check [-r]).</summary>
public interface ICheckableImage
{
    /// <summary>Runs a check (and a repair when asked); report receives each finding in qemu-img's words.</summary>
    ValueTask<ImageCheckResult> CheckAsync(ImageCheckMode mode, Action<string>? report, CancellationToken cancellationToken = default);
}
