namespace SharpBlock.Io;

/// <summary>What a range of a node holds. Convert, map, mirror, stream and NBD block status all start here.</summary>
[Flags]
public enum BlockStatusFlags
{
    None = 0,

    /// <summary>Reading returns data stored by this node or below (not a hole).</summary>
    Data = 1,

    /// <summary>The range reads as zeros.</summary>
    Zero = 2,

    /// <summary>This node itself decides the content (it does not fall through to a backing file).</summary>
    Allocated = 4,

    /// <summary><see cref="BlockStatus.Offset"/> is where the bytes sit in <see cref="BlockStatus.File"/>.</summary>
    OffsetValid = 8,
}

/// <summary>The answer to one block-status query: a run of <see cref="Length"/> bytes sharing one status.</summary>
public readonly record struct BlockStatus(BlockStatusFlags Flags, long Length, long Offset = 0, Graph.BlockNode? File = null)
{
    public bool IsData => (Flags & BlockStatusFlags.Data) != 0;
    public bool IsZero => (Flags & BlockStatusFlags.Zero) != 0;
    public bool IsAllocated => (Flags & BlockStatusFlags.Allocated) != 0;
}
