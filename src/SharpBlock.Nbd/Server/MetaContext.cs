using SharpBlock.Bitmaps;
using SharpBlock.Nbd.Protocol;

namespace SharpBlock.Nbd.Server;

/// <summary>What a metadata context reports for each extent.</summary>
internal enum MetaContextKind
{
    /// <summary>base:allocation: HOLE and ZERO flags from the device's block status.</summary>
    BaseAllocation,

    /// <summary>qemu:allocation-depth: which layer of the chain holds the extent (0: none).</summary>
    AllocationDepth,

    /// <summary>qemu:dirty-bitmap:NAME: DIRTY where the bitmap is set.</summary>
    DirtyBitmap,
}

/// <summary>
/// One metadata context an export offers. Its id is its place in the export's list, so the ids a client got
/// at NBD_OPT_SET_META_CONTEXT stay valid for the whole connection.
/// </summary>
internal sealed record MetaContext(uint Id, string Name, MetaContextKind Kind, NamedDirtyBitmap? Bitmap)
{
    public const string QemuNamespace = "qemu:";
    public const string AllocationDepthName = "qemu:allocation-depth";
    public const string DirtyBitmapPrefix = "qemu:dirty-bitmap:";

    /// <summary>Every context of the export in the order a LIST names them (QEMU's order).</summary>
    public static MetaContext[] Of(NbdExport export)
    {
        var list = new List<MetaContext> { new(NbdConstants.BaseAllocationId, NbdConstants.BaseAllocation, MetaContextKind.BaseAllocation, null) };
        if (export.AllocationDepth)
            list.Add(new((uint)list.Count + NbdConstants.BaseAllocationId, AllocationDepthName, MetaContextKind.AllocationDepth, null));
        foreach (var b in export.Bitmaps)
            list.Add(new((uint)list.Count + NbdConstants.BaseAllocationId, DirtyBitmapPrefix + b.Name, MetaContextKind.DirtyBitmap, b));
        return [.. list];
    }

    /// <summary>
    /// Whether a query selects this context. SET needs the exact name; a LIST also takes a namespace ("base:",
    /// "qemu:") or the bitmap prefix alone for every context under it, as the protocol and QEMU allow.
    /// </summary>
    public bool Matches(string query, bool list)
    {
        if (query == Name)
            return true;
        if (!list)
            return false;
        return Kind switch
        {
            MetaContextKind.BaseAllocation => query == "base:",
            MetaContextKind.AllocationDepth => query == QemuNamespace,
            _ => query is QemuNamespace or DirtyBitmapPrefix,
        };
    }
}
