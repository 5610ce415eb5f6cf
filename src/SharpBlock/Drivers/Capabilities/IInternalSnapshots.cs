using SharpBlock.Schema;

namespace SharpBlock.Drivers;

/// <summary>One internal snapshot, as every format that keeps them inside the image describes it.</summary>
public sealed record InternalSnapshot(string Id, string Name, long DateSec, long DateNsec, long VmClockNsec, long VmStateSize, long DiskSize, long Icount)
{
    /// <summary>The QAPI form (query-block, img info --output=json, the snapshot commands' replies).</summary>
    public SnapshotInfo ToSnapshotInfo() => new()
    {
        Id = Id,
        Name = Name,
        VmStateSize = VmStateSize,
        DateSec = DateSec,
        DateNsec = DateNsec,
        VmClockSec = VmClockNsec / 1_000_000_000,
        VmClockNsec = VmClockNsec % 1_000_000_000,
    };
}

/// <summary>A format that keeps snapshots inside the image (qcow2; later qed-less formats such as vmdk do not).</summary>
public interface IInternalSnapshots
{
    IReadOnlyList<InternalSnapshot> InternalSnapshots { get; }

    ValueTask<InternalSnapshot> CreateInternalSnapshotAsync(string name, CancellationToken cancellationToken = default);

    /// <summary>Deletes by id or name; returns what was deleted.</summary>
    ValueTask<InternalSnapshot> DeleteInternalSnapshotAsync(string idOrName, CancellationToken cancellationToken = default);

    ValueTask RevertToInternalSnapshotAsync(string idOrName, CancellationToken cancellationToken = default);

    /// <summary>Shows a snapshot instead of the current state on a read-only node (convert -l, measure -l).</summary>
    ValueTask LoadInternalSnapshotTemporarilyAsync(string idOrName, CancellationToken cancellationToken = default);
}
