using SharpBlock.Graph;

namespace SharpBlock.Drivers;

/// <summary>
/// Which node's internal snapshots a node shows. A node without snapshots of its own whose only child is its
/// file (raw, a filter) falls through to that child, as QEMU's snapshot fallback does, so raw over rbd has
/// rbd's snapshots; with a backing child or several children there is nothing it could snapshot whole.
/// </summary>
public static class InternalSnapshotLookup
{
    public static IInternalSnapshots? Of(BlockNode node)
    {
        for (BlockNode? n = node; n != null; n = n.Children.Count == 1 && n.Children[0].Role == ChildRole.File ? n.Children[0].Node : null)
        {
            if (n is IInternalSnapshots s)
                return s;
        }

        return null;
    }
}
