using SharpBlock.Schema;

namespace SharpBlock.Graph;

public abstract partial class BlockNode
{
    /// <summary>The graph that opened this node, whose event bus hears of damage it finds; null outside one.</summary>
    internal BlockGraph? OwnerGraph { get; set; }

    /// <summary>
    /// Tells the graph's clients that this node found its image damaged (BLOCK_IMAGE_CORRUPTED), naming the
    /// device directly above it, or none, as QEMU does.
    /// </summary>
    protected void RaiseImageCorrupted(string message, long? offset, long? size, bool fatal)
    {
        if (OwnerGraph == null)
            return;
        RaiseEvent(new BlockImageCorruptedEvent
        {
            Device = DeviceAbove() ?? "",
            NodeName = NodeName,
            Msg = message,
            Offset = offset,
            Size = size,
            Fatal = fatal,
        });
    }

    /// <summary>Puts an event on the bus of the graph that opened this node; a node outside a graph has nobody to tell.</summary>
    protected void RaiseEvent(IQapiEvent e) => OwnerGraph?.Events.Raise(e);

    /// <summary>The id of the device whose root this node is, or null: events name a node by its device when it has one.</summary>
    protected string? DeviceAbove()
    {
        var graph = OwnerGraph;
        if (graph == null)
            return null;
        foreach (var d in graph.Devices)
        {
            if (ReferenceEquals(d.Root, this))
                return d.Id;
        }

        return null;
    }
}
