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

    /// <summary>
    /// Whether a blkdebug filter sits below this node on its file children. A format asks once when it opens
    /// and skips every event call when none does, so the hooks cost a predictable branch on real images.
    /// </summary>
    public virtual bool HasDebugFilter => File?.HasDebugFilter ?? false;

    /// <summary>
    /// A format above says it raises read_aio, write_aio, flush_to_os and flush_to_disk itself, at the points
    /// QEMU does (before its data requests and around its cache write-back). A blkdebug filter that hears this
    /// stops raising them for every request it sees, so metadata I/O does not count as data I/O and no event
    /// fires twice (which would step a set-state machine twice). Without a format above, the filter keeps
    /// raising them, so a device straight on a blkdebug node still has events to trigger on.
    /// </summary>
    public virtual void ParentRaisesRequestEvents() => File?.ParentRaisesRequestEvents();
}
