using SharpBlock.Errors;
using SharpBlock.Schema;

namespace SharpBlock.Graph;

/// <summary>What a driver sees while it opens: its options, the settings passed down, and a way to open children.</summary>
public sealed class BlockOpenContext
{
    internal BlockOpenContext(BlockGraph graph, BlockdevOptions options, NodeSettings settings, List<BlockNode> opened,
        System.Collections.Immutable.ImmutableHashSet<string> images)
    {
        Graph = graph;
        Options = options;
        Settings = settings;
        Opened = opened;
        Images = images;
    }

    /// <summary>The image files being opened above this node; a backing chain that names one again loops.</summary>
    internal System.Collections.Immutable.ImmutableHashSet<string> Images { get; }

    public BlockGraph Graph { get; }
    public BlockdevOptions Options { get; }
    public NodeSettings Settings { get; }

    /// <summary>Nodes opened so far in this blockdev-add, closed again if a later step fails.</summary>
    internal List<BlockNode> Opened { get; }

    /// <summary>
    /// Opens (or looks up) a child. A reference names an existing node or device; a definition is opened
    /// with this node's settings as defaults, as QEMU passes cache and read-only down to children.
    /// </summary>
    /// <summary>The file a format node reads its image from, when it is given inline; null for protocol nodes.</summary>
    internal static string? ImageFileOf(BlockdevOptions o) =>
        o.Branch is BlockdevOptionsGenericFormat { File.Definition: { Driver: BlockdevDriver.File or BlockdevDriver.HostDevice or BlockdevDriver.HostCdrom or BlockdevDriver.HostFloppy } f }
            ? Path.GetFullPath((f.File ?? f.HostDevice ?? f.HostCdrom ?? f.HostFloppy)!.Filename)
            : null;

    public async ValueTask<BlockNode> OpenChildAsync(BlockdevRef reference, CancellationToken cancellationToken)
    {
        if (reference.Reference is { } name)
        {
            return Graph.FindNode(name) ?? Graph.FindDevice(name)?.Root
                ?? throw new BlockException(Errno.ENOENT, $"Cannot find device='{name}' nor node-name='{name}'");
        }

        // Writethrough (cache.writeback=false) is kept by flushing after each write at the node it was asked
        // for; the layers below stay writeback, as QEMU's do, or every level would flush the same write again.
        var inherited = Settings.Writeback ? Settings : Settings with { Writeback = true };
        return await Graph.OpenTreeAsync(reference.Definition!, inherited, Opened, cancellationToken, images: Images).ConfigureAwait(false);
    }
}
