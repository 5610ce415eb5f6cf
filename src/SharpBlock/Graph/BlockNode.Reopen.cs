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

    /// <summary>What a driver must redo to change between read-only and read-write (reopen a descriptor, take locks).</summary>
    protected virtual ValueTask ReopenCoreAsync(bool readOnly, CancellationToken cancellationToken) => ValueTask.CompletedTask;
}
