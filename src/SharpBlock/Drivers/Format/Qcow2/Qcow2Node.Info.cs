using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>What img info and query-block show of a qcow2 image.</summary>
public sealed partial class Qcow2Node
{
    public override async ValueTask<ImageInfo> GetImageInfoAsync(CancellationToken cancellationToken = default)
    {
        var info = await base.GetImageInfoAsync(cancellationToken).ConfigureAwait(false);
        info.ClusterSize = _clusterSize;
        info.DirtyFlag = IsDirty;
        var specific = new ImageInfoSpecificQCow2 { Compat = Compat };
        if (V3)
            specific.LazyRefcounts = LazyRefcounts;
        info.FormatSpecific = new ImageInfoSpecific { Type = ImageInfoSpecificKind.Qcow2, Qcow2 = specific };
        if (_snapshots.Count > 0)
        {
            var list = new List<SnapshotInfo>(_snapshots.Count);
            foreach (var s in _snapshots)
                list.Add(ToSnapshotInfo(s));
            info.Snapshots = list;
        }

        return info;
    }

    internal static SnapshotInfo ToSnapshotInfo(Qcow2Snapshot s) => ToInternal(s).ToSnapshotInfo();
}
