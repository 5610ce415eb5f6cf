using SharpBlock.Bitmaps;
using SharpBlock.Graph;
using SharpBlock.Qmp.Protocol;
using SharpBlock.Qmp.Schema;
using SharpBlock.Qmp.Server;
using SharpBlock.Schema;

namespace SharpBlock.Qmp.Commands;

/// <summary>
/// block-dirty-bitmap-add, -remove, -clear, -enable, -disable and -merge: thin fronts over the node's bitmaps,
/// answering in qemu-storage-daemon 7.2's words. Each command is split into a check that changes nothing and
/// an apply, so a transaction can check every action before it applies any.
/// </summary>
internal static class BitmapCommands
{
    public static void Register(QmpServer server)
    {
        server.Register(QmpCommandTable.BlockDirtyBitmapAdd(static (a, ctx) =>
        {
            PrepareAdd(ctx.Server.Graph, a);
            return ValueTask.CompletedTask;
        }));
        server.Register(QmpCommandTable.BlockDirtyBitmapRemove(static async (a, ctx) =>
            await PrepareRemove(ctx.Server.Graph, a, ctx.CancellationToken).CommitAsync().ConfigureAwait(false)));
        // Clear and merge on their own keep no copy of the old bits: only a transaction may need them back.
        server.Register(QmpCommandTable.BlockDirtyBitmapClear(static (a, ctx) =>
        {
            BlockNode.ClearBitmap(Lookup(ctx.Server.Graph, a).Bitmap);
            return ValueTask.CompletedTask;
        }));
        server.Register(QmpCommandTable.BlockDirtyBitmapEnable(static (a, ctx) =>
        {
            PrepareRecording(ctx.Server.Graph, a, true);
            return ValueTask.CompletedTask;
        }));
        server.Register(QmpCommandTable.BlockDirtyBitmapDisable(static (a, ctx) =>
        {
            PrepareRecording(ctx.Server.Graph, a, false);
            return ValueTask.CompletedTask;
        }));
        server.Register(QmpCommandTable.BlockDirtyBitmapMerge(static (a, ctx) =>
        {
            var (target, sources) = CheckMerge(ctx.Server.Graph, a);
            MergeInto(target, sources);
            return ValueTask.CompletedTask;
        }));
    }

    // A transaction's actions: each Prepare but remove's is the whole command (nothing is left to commit);
    // what it returns undoes it, for a transaction that fails further on.

    internal static PreparedAction PrepareAdd(BlockGraph graph, BlockDirtyBitmapAdd a)
    {
        var (node, bitmap) = Add(graph, a);
        return new PreparedAction { Abort = () => Undo(() => node.DetachBitmap(bitmap)) };
    }

    /// <summary>
    /// A remove is checked now and carried out at commit, as QEMU's: until then the bitmap is held busy, so a
    /// later action of the same transaction cannot use it (nor remove it twice), and an undo has nothing to restore.
    /// </summary>
    internal static PreparedAction PrepareRemove(BlockGraph graph, BlockDirtyBitmap a, CancellationToken ct)
    {
        var (node, bitmap) = Lookup(graph, a);
        BlockNode.CheckBitmap(bitmap, BitmapUse.Remove);
        BlockNode.SetBitmapBusy(bitmap, true);
        return new PreparedAction
        {
            Commit = async () =>
            {
                BlockNode.SetBitmapBusy(bitmap, false);
                await node.RemoveBitmapAsync(bitmap, ct).ConfigureAwait(false);
            },
            Abort = () => Undo(() => BlockNode.SetBitmapBusy(bitmap, false)),
        };
    }

    internal static PreparedAction PrepareClear(BlockGraph graph, BlockDirtyBitmap a)
    {
        var bitmap = Lookup(graph, a).Bitmap;
        BlockNode.CheckBitmap(bitmap, BitmapUse.Modify); // before the copy, which a refusal would waste
        var before = bitmap.Bits.Clone();
        BlockNode.ClearBitmap(bitmap);
        return new PreparedAction { Abort = () => Undo(() => bitmap.Bits.Restore(before)) };
    }

    internal static PreparedAction PrepareRecording(BlockGraph graph, BlockDirtyBitmap a, bool recording)
    {
        var bitmap = Lookup(graph, a).Bitmap;
        bool before = bitmap.Recording;
        BlockNode.SetBitmapRecording(bitmap, recording);
        return new PreparedAction { Abort = () => Undo(() => BlockNode.SetBitmapRecording(bitmap, before)) };
    }

    internal static PreparedAction PrepareMerge(BlockGraph graph, BlockDirtyBitmapMerge a)
    {
        var (target, sources) = CheckMerge(graph, a);
        var before = target.Bits.Clone();
        MergeInto(target, sources);
        return new PreparedAction { Abort = () => Undo(() => target.Bits.Restore(before)) };
    }

    private static void MergeInto(NamedDirtyBitmap target, IEnumerable<NamedDirtyBitmap> sources)
    {
        foreach (var s in sources)
            target.Bits.Merge(s.Bits);
    }

    private static ValueTask Undo(Action undo)
    {
        undo();
        return ValueTask.CompletedTask;
    }

    /// <summary>Adds the bitmap; the node it went on comes back so that a transaction can undo it.</summary>
    internal static (BlockNode Node, NamedDirtyBitmap Bitmap) Add(BlockGraph graph, BlockDirtyBitmapAdd a)
    {
        if (a.Name.Length == 0)
            throw new QmpException("Bitmap name cannot be empty");
        var node = FindNode(graph, a.Node) ?? throw new QmpException($"Cannot find device='{a.Node}' nor node-name='{a.Node}'");
        var bitmap = node.AddBitmap(a.Name, a.Granularity, a.Persistent ?? false, a.Disabled ?? false, WhereName(graph, node));
        return (node, bitmap);
    }

    /// <summary>The node and bitmap a BlockDirtyBitmap names, or QEMU's "not found" errors.</summary>
    internal static (BlockNode Node, NamedDirtyBitmap Bitmap) Lookup(BlockGraph graph, BlockDirtyBitmap a) => Lookup(graph, a.Node, a.Name);

    private static (BlockNode Node, NamedDirtyBitmap Bitmap) Lookup(BlockGraph graph, string nodeName, string name)
    {
        var node = FindNode(graph, nodeName) ?? throw new QmpException($"Node '{nodeName}' not found");
        var bitmap = node.FindBitmap(name) ?? throw new QmpException($"Dirty bitmap '{name}' not found");
        return (node, bitmap);
    }

    /// <summary>Every check of a merge, in QEMU's order (the target first, then each source as listed); changes nothing.</summary>
    internal static (NamedDirtyBitmap Target, List<NamedDirtyBitmap> Sources) CheckMerge(BlockGraph graph, BlockDirtyBitmapMerge a)
    {
        var (node, target) = Lookup(graph, a.Node, a.Target);
        BlockNode.CheckBitmap(target, BitmapUse.Modify);
        var sources = new List<NamedDirtyBitmap>(a.Bitmaps.Count);
        foreach (var s in a.Bitmaps)
        {
            NamedDirtyBitmap source;
            if (s.Local is { } local)
                source = node.FindBitmap(local) ?? throw new QmpException($"Dirty bitmap '{local}' not found");
            else
                source = Lookup(graph, s.External!).Bitmap;
            BlockNode.CheckMergeSource(target, source);
            sources.Add(source);
        }

        return (target, sources);
    }

    /// <summary>A node by node name, or the root of a device by the device's name, as QEMU's lookups take either.</summary>
    private static BlockNode? FindNode(BlockGraph graph, string name)
    {
        if (graph.FindDevice(name) is { } dev)
            return dev.Root ?? throw new QmpException($"Device '{name}' has no medium");
        return graph.FindNode(name);
    }

    /// <summary>How QEMU names a node in messages: its device's name when it is a device's root, else its node name.</summary>
    private static string WhereName(BlockGraph graph, BlockNode node)
    {
        foreach (var d in graph.Devices)
        {
            if (d.Root == node)
                return d.Id;
        }

        return node.NodeName;
    }
}
