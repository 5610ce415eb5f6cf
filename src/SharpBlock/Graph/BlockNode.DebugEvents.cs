using SharpBlock.Schema;

namespace SharpBlock.Graph;

public abstract partial class BlockNode
{
    /// <summary>
    /// A parent tells this node that it reached a named point of its work (an L2 table load, a refcount
    /// update...). Only the blkdebug filter acts on it; every other node hands it down to its file child, so
    /// a format can name points of its own I/O without knowing whether a debug filter sits somewhere below.
    /// Format drivers call it as <c>File?.DebugEvent(BlkdebugEvent.L2Load)</c>.
    /// </summary>
    public virtual void DebugEvent(BlkdebugEvent debugEvent) => File?.DebugEvent(debugEvent);
}
