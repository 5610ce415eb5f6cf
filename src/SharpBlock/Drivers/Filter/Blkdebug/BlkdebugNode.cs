using System.Buffers;
using System.Numerics;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Io;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Filter.Blkdebug;

/// <summary>
/// The blkdebug filter: passes requests to its image child and fails the ones its rules pick, so error
/// policies, jobs and NBD error replies can be tested against real failures. A format above fires events
/// through <see cref="BlockNode.DebugEvent"/> at QEMU's points of its metadata paths; one that raises the
/// request events itself says so (<see cref="BlockNode.ParentRaisesRequestEvents"/>), otherwise the filter
/// fires read_aio, write_aio, flush_to_os and flush_to_disk for the requests that pass through it. With 'align' the image only sees requests on that
/// alignment: unaligned writes become read-modify-write, serialised against overlapping writes.
/// </summary>
public sealed class BlkdebugNode : BlockNode
{
    private readonly BlockNode _image;
    private readonly BlkdebugRules _rules;
    private readonly int _align;
    private readonly RangeLock _writes = new();
    private volatile bool _parentRaisesRequestEvents;

    private BlkdebugNode(BlockNode image, NodeSettings settings, BlkdebugRules rules, int align)
        : base(settings)
    {
        _image = image;
        _rules = rules;
        _align = align;
        AttachChild(image, ChildRole.Image, "image");
    }

    public override string DriverName => "blkdebug";

    public override long Length => _image.Length;

    public override string Filename => _image.Filename;

    public override int RequestAlignment => Math.Max(_align, _image.RequestAlignment);

    protected override bool Growable => _image.IsGrowable;

    /// <summary>The state of the rule machine (1 when the node opens), for tests and diagnostics.</summary>
    public int State => _rules.State;

    internal static async ValueTask<BlockNode> OpenAsync(BlockOpenContext ctx, CancellationToken cancellationToken)
    {
        var o = ctx.Options.Blkdebug ?? throw new BlockException(Errno.EINVAL, "Missing blkdebug options");
        int align = 1;
        if (o.Align is { } a)
        {
            // The alignment must be a power of two that a request length can hold.
            if (a < 0 || a >= int.MaxValue || (a != 0 && !BitOperations.IsPow2(a)))
                throw new BlockException(Errno.EINVAL, $"Cannot meet constraints with align {a}");
            if (a > 0)
                align = (int)a;
        }

        var inject = new List<BlkdebugInjectRule>();
        var setState = new List<BlkdebugStateRule>();
        if (o.Config is { } config)
            BlkdebugConfigFile.Load(config, inject, setState);
        foreach (var r in o.InjectError ?? [])
        {
            inject.Add(new BlkdebugInjectRule
            {
                Event = r.Event,
                State = (int)(r.State ?? 0),
                Errno = (Errno)(int)(r.Errno ?? (int)Errno.EIO),
                Sector = r.Sector ?? -1,
                Once = r.Once ?? false,
                Immediately = r.Immediately ?? false,
            });
        }

        foreach (var r in o.SetState ?? [])
            setState.Add(new BlkdebugStateRule { Event = r.Event, State = (int)(r.State ?? 0), NewState = (int)r.NewState });

        var image = await ctx.OpenChildAsync(o.Image, cancellationToken).ConfigureAwait(false);
        return new BlkdebugNode(image, ctx.Settings, new BlkdebugRules(inject, setState), align);
    }

    public override void DebugEvent(BlkdebugEvent debugEvent) => _rules.Fire(debugEvent);

    public override bool HasDebugFilter => true;

    public override void ParentRaisesRequestEvents() => _parentRaisesRequestEvents = true;

    /// <summary>Fires the request's own event, then fails the request if an armed rule picks it.</summary>
    private ValueTask CheckAsync(BlkdebugEvent? e, long offset, long length)
    {
        if (e is { } ev && !_parentRaisesRequestEvents)
            _rules.Fire(ev);
        var rule = _rules.Check(offset, length);
        if (rule == null)
            return ValueTask.CompletedTask;
        // Only the errno, as QEMU's blkdebug fails a request: what a job or device reports must read as a real
        // disk's error would, so the same test against qemu-storage-daemon sees the same words.
        var ex = new BlockException(rule.Errno, BlockException.Describe(rule.Errno));
        return rule.Immediately ? ValueTask.FromException(ex) : FailLaterAsync(ex);
    }

    // Without 'immediately' the failure arrives after the request has yielded once, as a request that went
    // to the disk would; callers see both the synchronous and the asynchronous failure path.
    private static async ValueTask FailLaterAsync(BlockException ex)
    {
        await Task.Yield();
        throw ex;
    }

    private long AlignDown(long v) => v & ~((long)_align - 1);

    // Inside the image the last block may be partial, so rounding up stops at the end; past the end (a
    // growable file) the image grows by whole blocks.
    private long AlignUp(long v)
    {
        long up = AlignDown(v + _align - 1);
        long length = _image.Length;
        return v <= length ? Math.Min(up, length) : up;
    }

    // A request that ends at the end of the image is aligned enough: there is no block after it to merge with.
    private bool IsAligned(long offset, long length) =>
        (offset & (_align - 1)) == 0 && ((length & (_align - 1)) == 0 || offset + length == _image.Length);

    protected override async ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        await CheckAsync(BlkdebugEvent.ReadAio, offset, buffer.Length).ConfigureAwait(false);
        if (_align == 1 || IsAligned(offset, buffer.Length))
        {
            await _image.ReadAsync(offset, buffer, cancellationToken).ConfigureAwait(false);
            return;
        }

        long start = AlignDown(offset);
        long end = AlignUp(offset + buffer.Length);
        byte[] bounce = ArrayPool<byte>.Shared.Rent(checked((int)(end - start)));
        try
        {
            await _image.ReadAsync(start, bounce.AsMemory(0, (int)(end - start)), cancellationToken).ConfigureAwait(false);
            bounce.AsMemory((int)(offset - start), buffer.Length).CopyTo(buffer);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(bounce);
        }
    }

    protected override async ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags, CancellationToken cancellationToken)
    {
        await CheckAsync(BlkdebugEvent.WriteAio, offset, data.Length).ConfigureAwait(false);
        await WriteAlignedAsync(offset, data, flags, cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask WriteAlignedAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags, CancellationToken cancellationToken)
    {
        if (_align == 1)
        {
            await _image.WriteAsync(offset, data, flags, cancellationToken).ConfigureAwait(false);
            return;
        }

        long start = AlignDown(offset);
        long end = AlignUp(offset + data.Length);
        using (await _writes.AcquireAsync(start, end).ConfigureAwait(false))
        {
            if (IsAligned(offset, data.Length))
            {
                await _image.WriteAsync(offset, data, flags, cancellationToken).ConfigureAwait(false);
                return;
            }

            int len = checked((int)(end - start));
            byte[] bounce = ArrayPool<byte>.Shared.Rent(len);
            try
            {
                // Only the partial blocks at either end need their old bytes; the middle is overwritten.
                int headEnd = (int)Math.Min(len, _align);
                await _image.ReadAsync(start, bounce.AsMemory(0, headEnd), cancellationToken).ConfigureAwait(false);
                if (len > _align)
                {
                    int tailStart = len - (int)Math.Min(_align, end - AlignDown(end - 1));
                    await _image.ReadAsync(start + tailStart, bounce.AsMemory(tailStart, len - tailStart), cancellationToken).ConfigureAwait(false);
                }

                data.CopyTo(bounce.AsMemory((int)(offset - start)));
                await _image.WriteAsync(start, bounce.AsMemory(0, len), flags, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(bounce);
            }
        }
    }

    protected override async ValueTask WriteZeroesCoreAsync(long offset, long length, RequestFlags flags, CancellationToken cancellationToken)
    {
        await CheckAsync(BlkdebugEvent.WriteAio, offset, length).ConfigureAwait(false);
        if (_align == 1 || IsAligned(offset, length))
        {
            using (await _writes.AcquireAsync(offset, offset + length).ConfigureAwait(false))
                await _image.WriteZeroesAsync(offset, length, flags, cancellationToken).ConfigureAwait(false);
            return;
        }

        // Partial blocks at the ends are written as data; the aligned middle stays a zero write.
        long end = offset + length;
        long midStart = Math.Min(AlignUp(offset), end);
        long midEnd = Math.Max(AlignDown(end), midStart);
        byte[] zeros = ArrayPool<byte>.Shared.Rent(_align);
        try
        {
            Array.Clear(zeros);
            if (midStart > offset)
                await WriteAlignedAsync(offset, zeros.AsMemory(0, (int)(midStart - offset)), flags & RequestFlags.Fua, cancellationToken).ConfigureAwait(false);
            if (midEnd > midStart)
            {
                using (await _writes.AcquireAsync(midStart, midEnd).ConfigureAwait(false))
                    await _image.WriteZeroesAsync(midStart, midEnd - midStart, flags, cancellationToken).ConfigureAwait(false);
            }

            if (end > midEnd)
                await WriteAlignedAsync(midEnd, zeros.AsMemory(0, (int)(end - midEnd)), flags & RequestFlags.Fua, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(zeros);
        }
    }

    protected override async ValueTask DiscardCoreAsync(long offset, long length, CancellationToken cancellationToken)
    {
        await CheckAsync(null, offset, length).ConfigureAwait(false);
        // A discard may drop whole blocks only; partial ones at the ends are simply kept.
        long start = _align == 1 ? offset : AlignUp(offset);
        long end = _align == 1 ? offset + length : AlignDown(offset + length);
        if (end > start)
            await _image.DiscardAsync(start, end - start, cancellationToken).ConfigureAwait(false);
    }

    protected override async ValueTask FlushCoreAsync(CancellationToken cancellationToken)
    {
        // The flush a node does while closing is nobody's request; failing it would only make closing fail.
        if (!IsClosed)
        {
            await CheckAsync(BlkdebugEvent.FlushToOs, 0, 0).ConfigureAwait(false);
            await CheckAsync(BlkdebugEvent.FlushToDisk, 0, 0).ConfigureAwait(false);
        }

        await _image.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    protected override ValueTask<BlockStatus> BlockStatusCoreAsync(long offset, long length, CancellationToken cancellationToken) =>
        _image.GetBlockStatusAsync(offset, length, cancellationToken);

    public override ValueTask<long> GetAllocatedFileSizeAsync(CancellationToken cancellationToken = default) =>
        _image.GetAllocatedFileSizeAsync(cancellationToken);

    protected override ValueTask TruncateCoreAsync(long size, CancellationToken cancellationToken) =>
        _image.TruncateAsync(size, cancellationToken);
}
