using System.Buffers;
using SharpBlock.Bitmaps;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Io;
using SharpBlock.Schema;

namespace SharpBlock.Jobs.Backup;

/// <summary>
/// drive-backup: a point-in-time copy of a device as it was when the job started. The job copies cluster by
/// cluster; a write to a cluster not copied yet first copies the old contents to the target (copy before
/// write), so the target never sees data newer than the start.
/// </summary>
public sealed class BackupJob : BlockJob
{
    private const int ClusterSize = 64 * 1024;
    private readonly BlockNode _source;
    private readonly BlockNode _target;
    private readonly MirrorSyncMode _sync;
    private readonly bool _targetIsZeroed;
    private readonly DirtyBitmap _done;
    private readonly SemaphoreSlim _copyLock = new(1, 1);
    private readonly GuestWriteTracker _guestWrites;
    private long _bitmapTodo = -1;
    private long _bitmapCopied;

    private readonly NamedDirtyBitmap? _bitmap;
    private readonly BitmapSyncMode _bitmapMode;

    // What the named bitmap marked at the start (what a bitmap sync copies); the bitmap itself starts over
    // and records the writes made during the job, as QEMU's successor bitmap does.
    private readonly DirtyBitmap? _marked;

    public BackupJob(BlockBackend device, BlockNode target, MirrorSyncMode sync, bool targetIsZeroed,
        long speed, BlockdevOnError onSourceError, BlockdevOnError onTargetError,
        NamedDirtyBitmap? bitmap = null, BitmapSyncMode bitmapMode = BitmapSyncMode.Never)
        : base(device, BlockJobType.Backup, speed, onSourceError, onTargetError)
    {
        _source = device.Root ?? throw new BlockException(Errno.ENOMEDIUM, $"Device '{device.Id}' has no medium");
        _target = target;
        _sync = sync is MirrorSyncMode.Incremental ? MirrorSyncMode.Bitmap : sync;
        _targetIsZeroed = targetIsZeroed;
        // The bitmap marks clusters already copied: their old contents are safe on the target.
        _done = new DirtyBitmap(_source.Length, ClusterSize);
        Len = _source.Length;
        if (bitmap != null)
        {
            _bitmap = bitmap;
            _bitmapMode = bitmapMode;
            BlockNode.SetBitmapBusy(bitmap, true);
            // Taken before the tracker starts, so no write falls between the copy set and the new marks.
            _marked = bitmap.Bits.Clone();
            bitmap.Bits.ClearAll();
            if (_sync == MirrorSyncMode.Bitmap)
            {
                // Clusters the bitmap does not mark need no copy (the target's backing image holds them), and
                // no copy before a write either: count them done, and the job's length is what is left.
                long todo = 0;
                for (long c = 0; c < Len; c += ClusterSize)
                {
                    long n = Math.Min(ClusterSize, Len - c);
                    if (_marked.TryGetNextDirty(c, n, out long start, out _) && start < c + n)
                        todo += n;
                    else
                        _done.Set(c, n);
                }

                _bitmapTodo = todo;
            }
        }

        // A guest write must not overwrite data the backup still needs: it is copied first (copy before write).
        _guestWrites = new GuestWriteTracker(_source, beforeWrite: CopyBeforeWriteAsync);
    }

    protected override async Task RunAsync()
    {
        if (_bitmapTodo >= 0)
        {
            // QEMU counts a bitmap backup's progress in the bytes the bitmap marked.
            Len = _bitmapTodo;
            Offset = 0;
        }

        if (_sync == MirrorSyncMode.None)
        {
            // Only copy-before-write: the job lives until it is cancelled.
            while (true)
            {
                await PausePointAsync().ConfigureAwait(false);
                await WaitForWakeAsync(TimeSpan.FromMilliseconds(200)).ConfigureAwait(false);
            }
        }

        long len = _source.Length;
        for (long off = 0; off < len;)
        {
            await PausePointAsync().ConfigureAwait(false);
            var st = await _source.GetBlockStatusAsync(off, Math.Min(len - off, 16L << 20)).ConfigureAwait(false);
            bool skip = _sync == MirrorSyncMode.Top ? !st.IsAllocated : st.IsZero && _targetIsZeroed;
            long end = off + st.Length;
            if (skip)
            {
                // Aligned interior clusters of a run that needs no copy are done; partial ones are copied.
                long first = (off + ClusterSize - 1) / ClusterSize * ClusterSize;
                long last = end / ClusterSize * ClusterSize;
                if (end == len)
                    last = len;
                if (last > first)
                    _done.Set(first, last - first);
            }

            for (long c = off / ClusterSize * ClusterSize; c < end; c += ClusterSize)
            {
                if (!_done.IsDirty(c))
                {
                    await PausePointAsync().ConfigureAwait(false);
                    await CopyClusterAsync(c, nested: false, CancellationToken.None).ConfigureAwait(false);
                    await RateLimitAsync(ClusterSize).ConfigureAwait(false);
                }

                if (_bitmapTodo < 0)
                    Offset = Math.Min(c + ClusterSize, len);
            }

            off = end;
        }

        await _target.FlushAsync().ConfigureAwait(false);
    }

    private async ValueTask CopyClusterAsync(long cluster, bool nested, CancellationToken cancellationToken)
    {
        await _copyLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        byte[] buf = ArrayPool<byte>.Shared.Rent(ClusterSize);
        try
        {
            if (_done.IsDirty(cluster))
                return;
            int n = (int)Math.Min(ClusterSize, _source.Length - cluster);
            while (true)
            {
                try
                {
                    if (nested)
                        await _source.ReadNestedAsync(cluster, buf.AsMemory(0, n), cancellationToken).ConfigureAwait(false);
                    else
                        await _source.ReadAsync(cluster, buf.AsMemory(0, n), cancellationToken).ConfigureAwait(false);
                    break;
                }
                catch (BlockException ex) when (!nested)
                {
                    if (!await HandleErrorAsync(ex, onSource: true, isRead: true).ConfigureAwait(false))
                        return;
                }
            }

            while (true)
            {
                try
                {
                    if (!buf.AsSpan(0, n).ContainsAnyExcept((byte)0))
                    {
                        if (!_targetIsZeroed)
                            await _target.WriteZeroesAsync(cluster, n, RequestFlags.MayUnmap, cancellationToken).ConfigureAwait(false);
                    }
                    else
                    {
                        await _target.WriteAsync(cluster, buf.AsMemory(0, n), RequestFlags.None, cancellationToken).ConfigureAwait(false);
                    }

                    break;
                }
                catch (BlockException ex) when (!nested)
                {
                    if (!await HandleErrorAsync(ex, onSource: false, isRead: false).ConfigureAwait(false))
                        return;
                }
            }

            _done.Set(cluster, n);
            if (_bitmapTodo >= 0)
                Offset = Interlocked.Add(ref _bitmapCopied, n);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buf);
            _copyLock.Release();
        }
    }

    private async ValueTask CopyBeforeWriteAsync(long offset, long length, CancellationToken cancellationToken)
    {
        // A failure here fails the guest write, since letting it through would break the point-in-time guarantee.
        for (long c = offset / ClusterSize * ClusterSize; c < offset + length && c < _source.Length; c += ClusterSize)
        {
            if (!_done.IsDirty(c))
                await CopyClusterAsync(c, nested: true, cancellationToken).ConfigureAwait(false);
        }
    }

    public override BlockNode? Target => _target;

    /// <summary>Undoes the start of a job that was never run (its start was refused): the bitmap is as before.</summary>
    public void Abandon()
    {
        _guestWrites.Detach();
        ReleaseBitmap(success: false);
    }

    protected override async ValueTask CleanupAsync(bool success)
    {
        _guestWrites.Detach();
        ReleaseBitmap(success);
        try
        {
            await _target.FlushAsync().ConfigureAwait(false);
        }
        finally
        {
            await Device.Graph.CloseUnusedAsync(_target).ConfigureAwait(false);
        }
    }

    private void ReleaseBitmap(bool success)
    {
        if (_bitmap != null && _marked != null)
        {
            // The bitmap now holds the writes made during the job. On success with on-success or always that is
            // what it keeps; otherwise what it marked before comes back (with always, less what was copied).
            if (!success && _bitmapMode == BitmapSyncMode.Always)
            {
                _bitmap.Bits.Merge(Subtract(_marked, _done));
            }
            else if (!success || _bitmapMode == BitmapSyncMode.Never)
            {
                _bitmap.Bits.Merge(_marked);
            }

            BlockNode.SetBitmapBusy(_bitmap, false);
        }
    }

    /// <summary>The chunks of marked whose cluster was not copied.</summary>
    private static DirtyBitmap Subtract(DirtyBitmap marked, DirtyBitmap copied)
    {
        var left = marked.Clone();
        // A chunk wider than a cluster may be only partly copied: it stays marked.
        if (marked.Granularity > ClusterSize)
            return left;
        long offset = 0;
        while (offset < marked.Length && marked.TryGetNextDirty(offset, long.MaxValue, out long start, out long length))
        {
            for (long c = start / ClusterSize * ClusterSize; c < start + length; c += ClusterSize)
            {
                if (copied.IsDirty(c))
                    left.Clear(Math.Max(c, start), Math.Min(c + ClusterSize, start + length) - Math.Max(c, start));
            }

            offset = start + length;
        }

        return left;
    }
}
