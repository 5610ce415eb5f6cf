using SharpBlock.Drivers.Protocol.Memory;
using SharpBlock.Graph;

namespace SharpBlock.Fuzz;

/// <summary>
/// What one run of a target created that its driver may have to stop: the memory nodes, revoked when
/// the run is abandoned as a hang (see <see cref="MemoryNode.Revoke"/>).
/// </summary>
public sealed class FuzzContext
{
    private readonly List<MemoryNode> _nodes = [];
    private volatile bool _abandoned;

    public MemoryNode Memory(ReadOnlySpan<byte> bytes, NodeSettings settings, string name, long maxLength)
    {
        var node = new MemoryNode(bytes, settings, name, maxLength);
        lock (_nodes)
        {
            _nodes.Add(node);
            if (_abandoned)
                node.Revoke();
        }

        return node;
    }

    public void Abandon()
    {
        lock (_nodes)
        {
            _abandoned = true;
            foreach (var n in _nodes)
                n.Revoke();
        }
    }
}
