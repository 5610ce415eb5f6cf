using System.Buffers;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Jobs.Stream;

/// <summary>
/// block-stream: copies into the device's top image everything it still reads from its backing chain
/// above base, then makes base the top image's backing file. Guest writes go on meanwhile; a copy and a
/// guest write of the same range are serialised, so old backing data never overwrites newer guest data.
/// </summary>
public sealed class StreamJob : BlockJob
{
    private const int Chunk = 512 * 1024;
    private readonly BlockNode _top;
    private readonly BlockNode? _base;
    private readonly GuestWriteTracker _guestWrites;

    public StreamJob(BlockBackend device, BlockNode? baseNode, long speed, BlockdevOnError onError)
        : base(device, BlockJobType.Stream, speed, onError, onError)
    {
        _top = device.Root ?? throw new BlockException(Errno.ENOMEDIUM, $"Device '{device.Id}' has no medium");
        _base = baseNode;
        Len = _top.Length;
        _guestWrites = new GuestWriteTracker(_top);
    }

    protected override async Task RunAsync()
    {
        long len = Len;
        for (long off = 0; off < len;)
        {
            await PausePointAsync().ConfigureAwait(false);
            long n = Math.Min(Chunk, len - off);
            var st = await _top.GetBlockStatusAsync(off, n).ConfigureAwait(false);
            n = st.Length;
            if (!st.IsAllocated && _top.Backing is { } below)
            {
                var (copy, run) = await BackingChain.AllocatedAboveAsync(below, _base, off, n).ConfigureAwait(false);
                n = run;
                if (copy && !await TryCopyAsync(off, (int)n).ConfigureAwait(false))
                    continue;
                if (copy)
                    await RateLimitAsync(n).ConfigureAwait(false);
            }

            off += n;
            Offset = off;
        }

        // The data is all in the top image now: drop the images above base from the chain.
        await Device.Gate.BeginDrainAsync().ConfigureAwait(false);
        try
        {
            await BackingChain.RelinkAsync(Device.Graph, _top, _base).ConfigureAwait(false);
        }
        finally
        {
            Device.Gate.EndDrain();
        }
    }

    /// <summary>Copies one range up; false when a guest write got there first (the caller looks again).</summary>
    private async ValueTask<bool> TryCopyAsync(long offset, int length)
    {
        // New guest writes to the range now wait for us; those already running finish first.
        using var hold = await _guestWrites.HoldAsync(offset, length).ConfigureAwait(false);
        byte[] buf = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            var st = await _top.GetBlockStatusAsync(offset, length).ConfigureAwait(false);
            if (st.IsAllocated)
                return false;
            while (true)
            {
                try
                {
                    await _top.ReadAsync(offset, buf.AsMemory(0, length)).ConfigureAwait(false);
                    using (_guestWrites.OwnWrites())
                    {
                        if (buf.AsSpan(0, length).ContainsAnyExcept((byte)0))
                            await _top.WriteAsync(offset, buf.AsMemory(0, length)).ConfigureAwait(false);
                        else
                            await _top.WriteZeroesAsync(offset, length).ConfigureAwait(false);
                    }

                    return true;
                }
                catch (BlockException ex)
                {
                    if (!await HandleErrorAsync(ex, onSource: true, isRead: true).ConfigureAwait(false))
                        return true;
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buf);
        }
    }

    protected override ValueTask CleanupAsync(bool success)
    {
        _guestWrites.Detach();
        return ValueTask.CompletedTask;
    }
}
