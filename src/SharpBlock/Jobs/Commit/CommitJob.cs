using System.Buffers;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Jobs.Commit;

/// <summary>
/// block-commit below the active image: copies what the images from top down to (not including) base
/// hold into base, then makes base the backing file of the image above top and drops the images between.
/// Nothing writes to those images while the job runs (they are backing files), so a plain copy is exact.
/// Committing the active image itself is a mirror into base (<see cref="Mirror.MirrorJob"/>).
/// </summary>
public sealed class CommitJob : BlockJob
{
    private const int Chunk = 1 << 20;
    private readonly BlockNode _top;
    private readonly BlockNode _base;
    private bool _baseReopened;

    public CommitJob(BlockBackend device, BlockNode top, BlockNode baseNode, long speed)
        : base(device, BlockJobType.Commit, speed, BlockdevOnError.Report, BlockdevOnError.Report)
    {
        _top = top;
        _base = baseNode;
        Len = top.Length;
    }

    protected override async Task RunAsync()
    {
        if (_base.ReadOnly)
        {
            await _base.ReopenAsync(readOnly: false).ConfigureAwait(false);
            _baseReopened = true;
        }

        // The base grows to the top's size; it is never shrunk.
        if (_base.Length < _top.Length)
            await _base.TruncateAsync(_top.Length).ConfigureAwait(false);
        byte[] buf = ArrayPool<byte>.Shared.Rent(Chunk);
        try
        {
            long len = Len;
            for (long off = 0; off < len;)
            {
                await PausePointAsync().ConfigureAwait(false);
                var (copy, n) = await BackingChain.AllocatedAboveAsync(_top, _base, off, Math.Min(Chunk, len - off)).ConfigureAwait(false);
                if (copy)
                {
                    await _top.ReadAsync(off, buf.AsMemory(0, (int)n)).ConfigureAwait(false);
                    if (buf.AsSpan(0, (int)n).ContainsAnyExcept((byte)0))
                        await _base.WriteAsync(off, buf.AsMemory(0, (int)n)).ConfigureAwait(false);
                    else
                        await _base.WriteZeroesAsync(off, n).ConfigureAwait(false);
                    await RateLimitAsync(n).ConfigureAwait(false);
                }

                off += n;
                Offset = off;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buf);
        }

        await _base.FlushAsync().ConfigureAwait(false);
        var overlay = BackingChain.OverlayOf(Device.Root!, _top)
            ?? throw new BlockException(Errno.EINVAL, "Top image is no longer in the device's chain");
        await Device.Gate.BeginDrainAsync().ConfigureAwait(false);
        try
        {
            await BackingChain.RelinkAsync(Device.Graph, overlay, _base).ConfigureAwait(false);
        }
        finally
        {
            Device.Gate.EndDrain();
        }
    }

    protected override async ValueTask CleanupAsync(bool success)
    {
        if (_baseReopened && !_base.IsClosed)
            await _base.ReopenAsync(readOnly: true).ConfigureAwait(false);
    }
}
