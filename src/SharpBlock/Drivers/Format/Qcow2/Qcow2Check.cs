namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>What a check may repair: nothing, leaked clusters only, or everything (qemu-img check -r).</summary>
public enum Qcow2CheckMode
{
    None,
    Leaks,
    All,
}

/// <summary>The counts a consistency check reports (the fields of QAPI ImageCheck).</summary>
public sealed class Qcow2CheckResult
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
}
