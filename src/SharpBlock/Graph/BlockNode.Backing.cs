namespace SharpBlock.Graph;

public abstract partial class BlockNode
{
    /// <summary>
    /// Points this node's backing edge at another node (or none): what stream and commit do when they drop
    /// images from a chain. The caller holds a drain on this node and has already made the data match.
    /// </summary>
    public void ReplaceBacking(BlockNode? newBacking)
    {
        foreach (var c in _children.ToArray())
        {
            if (c.Role == ChildRole.Backing)
                DetachChild(c);
        }

        if (newBacking != null)
            AttachChild(newBacking, ChildRole.Backing, "backing");
    }
}
