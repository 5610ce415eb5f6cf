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
        var graph = OwnerGraph;
        if (graph == null)
            return;
        string device = "";
        foreach (var d in graph.Devices)
        {
            if (ReferenceEquals(d.Root, this))
            {
                device = d.Id;
                break;
            }
        }

        graph.Events.Raise(new BlockImageCorruptedEvent
        {
            Device = device,
            NodeName = NodeName,
            Msg = message,
            Offset = offset,
            Size = size,
            Fatal = fatal,
        });
    }
}
