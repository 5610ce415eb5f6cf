namespace SharpBlock.Graph;

/// <summary>The role a child plays for its parent; QEMU's names, as query and error messages use them.</summary>
public enum ChildRole
{
    File,
    Backing,
    Children,
    Test,
    Raw,
    Image,
}

/// <summary>One edge of the graph: a parent uses a child in a role.</summary>
public sealed class BlockChild
{
    public BlockChild(BlockNode parent, BlockNode node, ChildRole role, string name)
    {
        Parent = parent;
        Node = node;
        Role = role;
        Name = name;
    }

    public BlockNode Parent { get; }
    public BlockNode Node { get; internal set; }
    public ChildRole Role { get; }

    /// <summary>The edge's name: 'file', 'backing', 'children.0'...</summary>
    public string Name { get; }
}
