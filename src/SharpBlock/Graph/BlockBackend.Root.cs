namespace SharpBlock.Graph;

public sealed partial class BlockBackend
{
    /// <summary>
    /// Puts another node tree behind the device (a mirror's pivot): requests are drained, the root is
    /// swapped, requests resume against the new tree. The old tree is closed unless something else holds it.
    /// The caller has already brought the new tree up to date.
    /// </summary>
    public async ValueTask SwapRootAsync(BlockNode newRoot, Func<ValueTask>? whileDrained = null)
    {
        await Gate.BeginDrainAsync().ConfigureAwait(false);
        BlockNode? old;
        try
        {
            if (whileDrained != null)
                await whileDrained().ConfigureAwait(false);
            old = _root;
            newRoot.AddUser(this);
            _root = newRoot;
            old?.RemoveUser(this);
        }
        finally
        {
            Gate.EndDrain();
        }

        if (old != null && old.Users.Count == 0 && !old.MonitorOwned)
            await Graph.CloseNodeAsync(old).ConfigureAwait(false);
    }
}
