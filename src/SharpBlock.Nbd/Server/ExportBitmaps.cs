using SharpBlock.Bitmaps;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Nbd.Server;

/// <summary>
/// The bitmaps an export offers: found, checked and held busy as QEMU 7.2 does it, so that no command can
/// clear or remove a bitmap a reader is walking, and a read-only export never shows bits that still move.
/// </summary>
internal static class ExportBitmaps
{
    /// <summary>
    /// Finds each bitmap (a bare name on the node or the first node down its chain that has it; a
    /// node-and-name pair exactly there) and checks it, in QEMU's order and words. Changes nothing.
    /// </summary>
    public static List<NamedDirtyBitmap> Resolve(BlockGraph graph, BlockNode node, IEnumerable<BlockDirtyBitmapOrStr> names, bool writable)
    {
        var found = new List<NamedDirtyBitmap>();
        foreach (var n in names)
        {
            BlockNode? owner = null;
            NamedDirtyBitmap? bitmap = null;
            if (n.Local is { } local)
            {
                for (var layer = node; layer != null && bitmap == null; layer = layer.Backing)
                {
                    bitmap = layer.FindBitmap(local);
                    owner = layer;
                }

                if (bitmap == null)
                    throw new BlockException(Errno.ENOENT, $"Bitmap '{local}' is not found");
            }
            else
            {
                var e = n.External!;
                owner = (graph.FindDevice(e.Node)?.Root ?? graph.FindNode(e.Node)) ?? throw new BlockException(Errno.ENOENT, $"Node '{e.Node}' not found");
                bitmap = owner.FindBitmap(e.Name) ?? throw new BlockException(Errno.ENOENT, $"Dirty bitmap '{e.Name}' not found");
            }

            BlockNode.CheckBitmap(bitmap, BitmapUse.Toggle);
            if (!writable && !owner!.ReadOnly && bitmap.Recording)
                throw new BlockException(Errno.EINVAL, $"Enabled bitmap '{bitmap.Name}' incompatible with readonly export");
            // Named twice, offered once: two contexts of one name would make a client's selection ambiguous.
            if (!found.Exists(f => f.Name == bitmap.Name))
                found.Add(bitmap);
        }

        return found;
    }

    public static void Hold(IReadOnlyList<NamedDirtyBitmap> bitmaps, bool busy)
    {
        foreach (var b in bitmaps)
            BlockNode.SetBitmapBusy(b, busy);
    }
}
