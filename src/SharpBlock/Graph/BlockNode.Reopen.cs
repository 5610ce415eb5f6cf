using SharpBlock.Errors;
using SharpBlock.Schema;

namespace SharpBlock.Graph;

public abstract partial class BlockNode
{
    /// <summary>
    /// Switches a node tree between read-only and read-write while it stays open (commit writes into a
    /// backing image that was opened read-only). The node and its file child are drained and reopened,
    /// children first on the way to read-write so a writable format never sits on a read-only file.
    /// </summary>
    public async ValueTask ReopenAsync(bool readOnly, CancellationToken cancellationToken = default)
    {
        if (ReadOnly == readOnly)
            return;
        await using (await DrainAsync().ConfigureAwait(false))
        {
            if (!readOnly && File is { } f1)
                await f1.ReopenAsync(readOnly, cancellationToken).ConfigureAwait(false);
            if (readOnly && !ReadOnly)
                await FlushCoreAsync(cancellationToken).ConfigureAwait(false);
            await ReopenCoreAsync(readOnly, cancellationToken).ConfigureAwait(false);
            Settings = Settings with { ReadOnly = readOnly };
            if (readOnly && File is { } f2)
                await f2.ReopenAsync(readOnly, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// blockdev-reopen's change of this node alone: read-only or read-write, and the per-request options
    /// (detect-zeroes, discard). Children keep their state (the command reopens those it names itself), so a
    /// node cannot become writable over a read-only file.
    /// </summary>
    public async ValueTask ReopenAloneAsync(bool readOnly, BlockdevDetectZeroesOptions detectZeroes, BlockdevDiscardOptions discard,
        CancellationToken cancellationToken = default)
    {
        await using (await DrainAsync().ConfigureAwait(false))
        {
            if (readOnly != ReadOnly)
            {
                if (!readOnly && File is { ReadOnly: true })
                    throw new BlockException(Errno.EACCES, "Block node is read-only");
                if (readOnly)
                    await FlushCoreAsync(cancellationToken).ConfigureAwait(false);
                await ReopenCoreAsync(readOnly, cancellationToken).ConfigureAwait(false);
            }

            Settings = Settings with { ReadOnly = readOnly, DetectZeroes = detectZeroes, Discard = discard };
        }
    }

    /// <summary>What a driver must redo to change between read-only and read-write (reopen a descriptor, take locks).</summary>
    protected virtual ValueTask ReopenCoreAsync(bool readOnly, CancellationToken cancellationToken) => ValueTask.CompletedTask;
}
