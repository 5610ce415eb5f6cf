namespace SharpBlock.Graph;

public abstract partial class BlockNode
{
    /// <summary>
    /// Reads without entering the drain gate. Only for code that runs inside a request already admitted to
    /// this node (a copy-before-write hook): entering again could wait on a drain that waits on us.
    /// </summary>
    internal ValueTask ReadNestedAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken) =>
        buffer.Length == 0 ? ValueTask.CompletedTask : ReadCoreAsync(offset, buffer, cancellationToken);
}
