namespace SharpBlock.Graph;

public abstract partial class BlockNode
{
    /// <summary>
    /// Whether the node accepts requests past its end. A filter passes its child's answer on, so a format
    /// over a filter over a file can still grow into the file.
    /// </summary>
    internal bool IsGrowable => Growable;
}
