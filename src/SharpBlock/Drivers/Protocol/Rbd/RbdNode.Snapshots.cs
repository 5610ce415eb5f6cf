using SharpBlock.Errors;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Protocol.Rbd;

/// <summary>rbd snapshots as the node's internal snapshots (a raw node above forwards to them), and what img info shows.</summary>
internal sealed partial class RbdNode : IInternalSnapshots
{
    // Listed live each time: `rbd snap create` from outside shows up without reopening, as with QEMU.
    IReadOnlyList<InternalSnapshot> IInternalSnapshots.InternalSnapshots => RbdSnapshots.List(_image);

    async ValueTask<InternalSnapshot> IInternalSnapshots.CreateInternalSnapshotAsync(string name, CancellationToken cancellationToken)
    {
        // A snapshot holds what has reached the cluster: write back librbd's cache first.
        await FlushCoreAsync(cancellationToken).ConfigureAwait(false);
        return await Task.Run(() => RbdSnapshots.Create(_image, name), cancellationToken).ConfigureAwait(false);
    }

    async ValueTask<InternalSnapshot> IInternalSnapshots.DeleteInternalSnapshotAsync(string idOrName, CancellationToken cancellationToken) =>
        await Task.Run(() => RbdSnapshots.Remove(_image, idOrName), cancellationToken).ConfigureAwait(false);

    async ValueTask IInternalSnapshots.RevertToInternalSnapshotAsync(string idOrName, CancellationToken cancellationToken)
    {
        await Task.Run(() => RbdSnapshots.Rollback(_image, idOrName), cancellationToken).ConfigureAwait(false);
        // The snapshot may have been taken at another size.
        _length = _image.GetSize();
    }

    // QEMU's rbd driver cannot show a snapshot in place of the image either (convert -l).
    ValueTask IInternalSnapshots.LoadInternalSnapshotTemporarilyAsync(string idOrName, CancellationToken cancellationToken) =>
        throw new BlockException(Errno.EOPNOTSUPP, "Block format 'rbd' does not support temporarily loading internal snapshots");

    /// <summary>As QEMU's rbd get_info: the object size as cluster size, and the snapshots.</summary>
    public override async ValueTask<ImageInfo> GetImageInfoAsync(CancellationToken cancellationToken = default)
    {
        var info = await base.GetImageInfoAsync(cancellationToken).ConfigureAwait(false);
        var (objectSize, snapshots) = await Task.Run(() => (_image.ObjectSize(), RbdSnapshots.List(_image)), cancellationToken).ConfigureAwait(false);
        info.ClusterSize = objectSize;
        if (snapshots.Count > 0)
        {
            var list = new List<SnapshotInfo>(snapshots.Count);
            foreach (var s in snapshots)
                list.Add(s.ToSnapshotInfo());
            info.Snapshots = list;
        }

        return info;
    }
}
