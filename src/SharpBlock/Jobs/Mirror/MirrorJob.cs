using System.Buffers;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Jobs.Mirror;

/// <summary>
/// drive-mirror: copies a device's image to a target while the device stays in use. A dirty bitmap, fed by
/// every write the device's root node receives, says what still differs; the job copies dirty chunks until
/// none are left, reports ready, then keeps the target in sync until completed (the device switches to the
/// target) or cancelled (the target keeps a point-in-time copy).
/// </summary>
public sealed class MirrorJob : BlockJob
{
    private readonly BlockNode _source;
    private readonly BlockNode _target;
    private readonly MirrorSyncMode _sync;
    private readonly bool _targetIsZeroed;
    private readonly int _chunk;
    private readonly DirtyBitmap _dirty;
    private readonly GuestWriteTracker _guestWrites;
    private readonly bool _activeCommit;
    private bool _pivoted;

    /// <summary>
    /// A mirror to target. With activeCommitBase the job is block-commit of the active image: the target is
    /// that base (in the device's own chain), the first pass copies what lies above it, and completion makes
    /// it the device's image.
    /// </summary>
    public MirrorJob(BlockBackend device, BlockNode target, MirrorSyncMode sync, int granularity, long bufSize, bool targetIsZeroed,
        long speed, BlockdevOnError onSourceError, BlockdevOnError onTargetError, bool activeCommit = false)
        : base(device, activeCommit ? BlockJobType.Commit : BlockJobType.Mirror, speed, onSourceError, onTargetError)
    {
        _activeCommit = activeCommit;
        _source = device.Root ?? throw new BlockException(Errno.ENOMEDIUM, $"Device '{device.Id}' has no medium");
        _target = target;
        _sync = sync;
        _targetIsZeroed = targetIsZeroed;
        _chunk = (int)Math.Clamp(bufSize, granularity, 1 << 20);
        _dirty = new DirtyBitmap(_source.Length, granularity);
        Len = _source.Length;
        // Tracking starts before the first copy, so nothing written meanwhile is missed.
        _guestWrites = new GuestWriteTracker(_source, afterWrite: (offset, length) =>
        {
            _dirty.Set(offset, length);
            Wake();
        });
    }

    public DirtyBitmap DirtyBitmap => _dirty;

    protected override bool SupportsComplete => true;

    protected override bool CancelMeansComplete => Ready;

    protected override async Task RunAsync()
    {
        if (_sync != MirrorSyncMode.None)
            await MarkInitialAsync().ConfigureAwait(false);
        long cursor = 0;
        while (true)
        {
            if (Ready && (CompleteRequested || CancelRequested))
            {
                // job-cancel abandons a ready mirror as QEMU 7.2 does: no final copy, the job ends cancelled.
                if (AbortRequested && !CompleteRequested)
                    throw new OperationCanceledException();
                // Complete switches the device over; cancel after ready leaves a copy as of now. Both
                // copy what is still dirty with the device drained, so nothing written before is missed.
                if (CompleteRequested)
                    await PivotAsync().ConfigureAwait(false);
                else
                    await SyncDrainedAsync().ConfigureAwait(false);
                return;
            }

            await PausePointAsync().ConfigureAwait(false);
            if (_dirty.TryGetNextDirty(cursor, _chunk, out long start, out long length)
                || (cursor > 0 && _dirty.TryGetNextDirty(0, _chunk, out start, out length)))
            {
                await CopyAsync(start, (int)length).ConfigureAwait(false);
                cursor = start + length;
                Offset = Len - _dirty.DirtyBytes;
                await RateLimitAsync(length).ConfigureAwait(false);
                continue;
            }

            cursor = 0;
            Offset = Len;
            if (!Ready)
            {
                await _target.FlushAsync().ConfigureAwait(false);
                SetReady();
                continue;
            }

            await WaitForWakeAsync(TimeSpan.FromMilliseconds(100)).ConfigureAwait(false);
        }
    }

    /// <summary>What the first pass must copy: everything with data (full) or what the top image holds (top).</summary>
    private async ValueTask MarkInitialAsync()
    {
        long len = Len;
        if (_activeCommit)
        {
            if (_target.ReadOnly)
                await _target.ReopenAsync(readOnly: false).ConfigureAwait(false);
            if (_target.Length < len)
                await _target.TruncateAsync(len).ConfigureAwait(false);
            for (long off = 0; off < len;)
            {
                var (copy, n) = await BackingChain.AllocatedAboveAsync(_source, _target, off, len - off).ConfigureAwait(false);
                if (copy)
                    _dirty.Set(off, n);
                off += n;
            }

            return;
        }

        for (long off = 0; off < len;)
        {
            var st = await _source.GetBlockStatusAsync(off, len - off).ConfigureAwait(false);
            bool copy = _sync == MirrorSyncMode.Full ? !(st.IsZero && _targetIsZeroed) : st.IsAllocated;
            if (copy)
                _dirty.Set(off, st.Length);
            off += st.Length;
        }
    }

    private async ValueTask CopyAsync(long offset, int length)
    {
        // Cleared before reading: a write landing during the copy sets it again and it is copied again.
        _dirty.Clear(offset, length);
        byte[] buf = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            while (true)
            {
                try
                {
                    await _source.ReadAsync(offset, buf.AsMemory(0, length)).ConfigureAwait(false);
                    break;
                }
                catch (BlockException ex)
                {
                    if (!await HandleErrorAsync(ex, onSource: true, isRead: true).ConfigureAwait(false))
                    {
                        _dirty.Set(offset, length);
                        return;
                    }
                }
            }

            while (true)
            {
                try
                {
                    if (!buf.AsSpan(0, length).ContainsAnyExcept((byte)0))
                        await _target.WriteZeroesAsync(offset, length, Io.RequestFlags.MayUnmap).ConfigureAwait(false);
                    else
                        await _target.WriteAsync(offset, buf.AsMemory(0, length)).ConfigureAwait(false);
                    break;
                }
                catch (BlockException ex)
                {
                    if (!await HandleErrorAsync(ex, onSource: false, isRead: false).ConfigureAwait(false))
                    {
                        _dirty.Set(offset, length);
                        return;
                    }
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buf);
        }
    }

    private async ValueTask CopyRemainingAsync()
    {
        while (_dirty.TryGetNextDirty(0, _chunk, out long s, out long l))
            await CopyAsync(s, (int)l).ConfigureAwait(false);
        await _target.FlushAsync().ConfigureAwait(false);
        Offset = Len;
    }

    /// <summary>With the device drained, copies what is still dirty, then switches the device to the target.</summary>
    private async ValueTask PivotAsync()
    {
        await Device.SwapRootAsync(_target, async () =>
        {
            await CopyRemainingAsync().ConfigureAwait(false);
            _guestWrites.Detach();
        }).ConfigureAwait(false);
        _pivoted = true;
    }

    private async ValueTask SyncDrainedAsync()
    {
        await Device.Gate.BeginDrainAsync().ConfigureAwait(false);
        try
        {
            await CopyRemainingAsync().ConfigureAwait(false);
            _guestWrites.Detach();
        }
        finally
        {
            Device.Gate.EndDrain();
        }
    }

    public override BlockNode? Target => _target;

    protected override async ValueTask CleanupAsync(bool success)
    {
        _guestWrites.Detach();
        if (_activeCommit)
        {
            // The base stays in the chain: back to read-only unless it became the device's image.
            if (!_pivoted && !_target.IsClosed && !_target.ReadOnly)
                await _target.ReopenAsync(readOnly: true).ConfigureAwait(false);
            return;
        }

        if (!_pivoted)
        {
            try
            {
                await _target.FlushAsync().ConfigureAwait(false);
            }
            finally
            {
                await Device.Graph.CloseUnusedAsync(_target).ConfigureAwait(false);
            }
        }
    }
}
