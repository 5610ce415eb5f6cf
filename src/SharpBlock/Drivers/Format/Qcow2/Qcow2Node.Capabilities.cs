namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>What qcow2 offers the tool and the QMP commands beyond reading and writing, through the format contract.</summary>
public sealed partial class Qcow2Node : ICheckableImage, IInternalSnapshots, ICompressedWrites, IMakeEmpty, IFormatSpecificInfo, IResizeRules
{
    IReadOnlyList<InternalSnapshot> IInternalSnapshots.InternalSnapshots
    {
        get
        {
            var list = new List<InternalSnapshot>(_snapshots.Count);
            foreach (var s in _snapshots)
                list.Add(ToInternal(s));
            return list;
        }
    }

    async ValueTask<InternalSnapshot> IInternalSnapshots.CreateInternalSnapshotAsync(string name, CancellationToken cancellationToken) =>
        ToInternal(await CreateSnapshotAsync(name, cancellationToken).ConfigureAwait(false));

    async ValueTask<InternalSnapshot> IInternalSnapshots.DeleteInternalSnapshotAsync(string idOrName, CancellationToken cancellationToken) =>
        ToInternal(await DeleteSnapshotAsync(idOrName, cancellationToken).ConfigureAwait(false));

    ValueTask IInternalSnapshots.RevertToInternalSnapshotAsync(string idOrName, CancellationToken cancellationToken) =>
        RevertToSnapshotAsync(idOrName, cancellationToken);

    ValueTask IInternalSnapshots.LoadInternalSnapshotTemporarilyAsync(string idOrName, CancellationToken cancellationToken) =>
        LoadSnapshotTemporarilyAsync(idOrName, cancellationToken);

    private static InternalSnapshot ToInternal(Qcow2Snapshot s) =>
        new(s.Id, s.Name, s.DateSec, s.DateNsec, s.VmClockNsec, s.VmStateSize, s.DiskSize, s.Icount);

    /// <summary>qemu-img refuses a qcow2 size that is not whole sectors, growing too.</summary>
    int IResizeRules.SizeGranularity => 512;

    bool IResizeRules.PreallocatesMetadata => true;
}
