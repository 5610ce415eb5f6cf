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
            Add(ctx.Server.Graph, a);
            return ValueTask.CompletedTask;
        }));
        server.Register(QmpCommandTable.BlockDirtyBitmapRemove(static async (a, ctx) =>
        {
            var (node, bitmap) = Lookup(ctx.Server.Graph, a);
            await node.RemoveBitmapAsync(bitmap, ctx.CancellationToken).ConfigureAwait(false);
        }));
        server.Register(QmpCommandTable.BlockDirtyBitmapClear(static (a, ctx) =>
        {
            BlockNode.ClearBitmap(Lookup(ctx.Server.Graph, a).Bitmap);
            return ValueTask.CompletedTask;
        }));
        server.Register(QmpCommandTable.BlockDirtyBitmapEnable(static (a, ctx) =>
        {
            BlockNode.SetBitmapRecording(Lookup(ctx.Server.Graph, a).Bitmap, true);
            return ValueTask.CompletedTask;
        }));
        server.Register(QmpCommandTable.BlockDirtyBitmapDisable(static (a, ctx) =>
        {
            BlockNode.SetBitmapRecording(Lookup(ctx.Server.Graph, a).Bitmap, false);
            return ValueTask.CompletedTask;
        }));
        server.Register(QmpCommandTable.BlockDirtyBitmapMerge(static (a, ctx) =>
        {
            var (target, sources) = CheckMerge(ctx.Server.Graph, a);
            foreach (var s in sources)
                target.Bits.Merge(s.Bits);
            return ValueTask.CompletedTask;
        }));
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
