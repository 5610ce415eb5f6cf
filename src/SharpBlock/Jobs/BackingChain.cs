using SharpBlock.Copy;
using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Jobs;

/// <summary>Questions stream and commit ask of a backing chain.</summary>
public static class BackingChain
{
    /// <summary>
    /// Whether the bytes at offset are decided by some image from 'from' down to (not including) 'stopAt',
    /// and for how long that answer holds (at most length bytes).
    /// </summary>
    public static async ValueTask<(bool Allocated, long Length)> AllocatedAboveAsync(BlockNode from, BlockNode? stopAt, long offset, long length)
    {
        // Zeros past the end of a shorter intermediate image count as decided by the layer above it, as QEMU
        // counts them: a commit must write them into the base, a stream into the overlay.
        var st = await BlockStatusAbove.GetAsync(from, stopAt, offset, length).ConfigureAwait(false);
        return (st.IsAllocated, st.Length);
    }

    /// <summary>Whether node lies in the backing chain below top (top itself included).</summary>
    public static bool Contains(BlockNode top, BlockNode node)
    {
        for (var n = top; n != null; n = n.Backing)
        {
            if (n == node)
                return true;
        }

        return false;
    }

    /// <summary>The image whose backing is node, searching down from top; null when node is top.</summary>
    public static BlockNode? OverlayOf(BlockNode top, BlockNode node)
    {
        for (var n = top; n != null; n = n.Backing)
        {
            if (n.Backing == node)
                return n;
        }

        return null;
    }

    /// <summary>Finds an image of the chain by the file name QMP clients use (as written or as resolved).</summary>
    public static BlockNode? FindByFilename(BlockNode top, string filename)
    {
        for (var n = top; n != null; n = n.Backing)
        {
            if (n.Filename == filename || n.NodeName == filename || Path.GetFullPath(n.Filename) == Path.GetFullPath(filename))
                return n;
        }

        return null;
    }

    /// <summary>Writes the new backing file into the overlay's metadata and points its backing edge at newBacking.</summary>
    public static async ValueTask RelinkAsync(BlockGraph graph, BlockNode overlay, BlockNode? newBacking)
    {
        var dropped = overlay.Backing;
        if (overlay is not IBackingFileFormat f)
            throw new BlockException(Errno.EOPNOTSUPP, $"Format '{overlay.DriverName}' cannot change its backing file");
        bool wasReadOnly = overlay.ReadOnly;
        if (wasReadOnly)
            await overlay.ReopenAsync(readOnly: false).ConfigureAwait(false);
        try
        {
            await f.ChangeBackingFileAsync(newBacking?.Filename, newBacking?.DriverName).ConfigureAwait(false);
            overlay.ReplaceBacking(newBacking);
            // The images that fell out of the chain are closed (newBacking stays: the overlay holds it).
            if (dropped != null && dropped != newBacking)
                await graph.CloseUnusedAsync(dropped).ConfigureAwait(false);
        }
        finally
        {
            if (wasReadOnly)
                await overlay.ReopenAsync(readOnly: true).ConfigureAwait(false);
        }
    }
}
