using SharpBlock.Graph;
using SharpBlock.Io;

namespace SharpBlock.Copy;

/// <summary>
/// Block status through a backing chain: the one walk that convert, map, measure and the jobs share, so that
/// "which layer decides these bytes" has one answer everywhere.
/// </summary>
public static class BlockStatusAbove
{
    /// <summary>
    /// Walks down from <paramref name="top"/> until a layer decides the range at <paramref name="offset"/>, the
    /// chain ends, or <paramref name="stopAt"/> is reached (then the answer is "not allocated", depth of
    /// stopAt). The answer covers at most <paramref name="length"/> bytes; the caller asks again for the rest.
    /// </summary>
    public static async ValueTask<LayeredStatus> GetAsync(BlockNode top, BlockNode? stopAt, long offset, long length, CancellationToken cancellationToken = default)
    {
        int depth = 0;
        for (var node = top; ; node = node.Backing, depth++)
        {
            if (node == stopAt)
                return new LayeredStatus(new BlockStatus(BlockStatusFlags.None, length), depth, false);
            if (offset >= node.Length)
            {
                // A backing image shorter than its overlay: the overlay reads zeros there.
                return new LayeredStatus(new BlockStatus(BlockStatusFlags.Zero, length), Math.Max(0, depth - 1), true);
            }

            var st = await node.GetBlockStatusAsync(offset, Math.Min(length, node.Length - offset), cancellationToken).ConfigureAwait(false);
            length = st.Length;
            if (st.IsAllocated || node.Backing == null)
                return new LayeredStatus(st, depth, false);
        }
    }

    /// <summary>
    /// Bytes a copy of <paramref name="source"/> must store in clusters of <paramref name="clusterSize"/>: every
    /// cluster holding data somewhere in the chain, counted whole (img measure's "required").
    /// </summary>
    public static async ValueTask<long> AllocatedClusterBytesAsync(BlockNode source, long clusterSize, CancellationToken cancellationToken = default)
    {
        long required = 0;
        long size = source.Length;
        for (long offset = 0; offset < size;)
        {
            var st = await GetAsync(source, null, offset, size - offset, cancellationToken).ConfigureAwait(false);
            long len = st.Length;
            if (!st.IsZero && st.IsData)
            {
                long extended = ((offset + len + clusterSize - 1) / clusterSize * clusterSize) - offset;
                required += (offset % clusterSize) + extended;
                len = extended;
            }

            offset += len;
        }

        return required;
    }
}
