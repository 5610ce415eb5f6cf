using System.IO.Compression;
using SharpBlock.Errors;
using SharpBlock.Io;

namespace SharpBlock.Drivers.Format.Vmdk;

/// <summary>
/// Compressed writes (convert -c, and every convert into a streamOptimized image, which takes nothing else):
/// grains of a compressed extent are deflated and appended; other extents store the grain plainly, as QEMU does.
/// </summary>
public sealed partial class VmdkNode : ICompressedWrites
{
    /// <summary>A streamOptimized image accepts only whole, compressed grains.</summary>
    bool ICompressedWrites.CompressedOnly => _extents[0].Compressed;

    int ICompressedWrites.CompressCluster(ReadOnlySpan<byte> cluster, Span<byte> output)
    {
        if (!_extents[0].Compressed)
            return -1;
        using var ms = new MemoryStream();
        using (var z = new ZLibStream(ms, CompressionLevel.Optimal, leaveOpen: true))
            z.Write(cluster);
        if (ms.Length > output.Length)
            return -1;
        ms.GetBuffer().AsSpan(0, (int)ms.Length).CopyTo(output);
        return (int)ms.Length;
    }

    async ValueTask ICompressedWrites.WriteCompressedAsync(long offset, ReadOnlyMemory<byte> cluster, ReadOnlyMemory<byte> compressed, CancellationToken cancellationToken)
    {
        var extent = Find(offset);
        if (extent is not VmdkSparseExtent { Compressed: true } sparse)
        {
            await WriteAsync(offset, cluster, RequestFlags.None, cancellationToken).ConfigureAwait(false);
            return;
        }

        if (ReadOnly)
            throw new BlockException(Errno.EPERM, $"Node '{NodeName}' is read-only");
        await UpdateCidOnceAsync(cancellationToken).ConfigureAwait(false);
        long inExtent = offset - extent.Start;
        await _meta.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var m = await sparse.MapAsync(inExtent, cancellationToken).ConfigureAwait(false);
            if (m.State == VmdkGrainState.Compressed)
                throw new BlockException(Errno.EIO, "Could not write to allocated cluster for streamOptimized");
            long sector = compressed.Length > 0
                ? await sparse.AppendPackedAsync(inExtent, compressed, cancellationToken).ConfigureAwait(false)
                : await sparse.AppendCompressedAsync(inExtent, cluster, cancellationToken).ConfigureAwait(false);
            await sparse.SetEntryAsync(inExtent, (uint)sector, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _meta.Release();
        }
    }
}
