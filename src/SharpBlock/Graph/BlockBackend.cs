using System.Diagnostics;
using System.Runtime.CompilerServices;
using SharpBlock.Errors;
using SharpBlock.Io;
using SharpBlock.Schema;

namespace SharpBlock.Graph;

/// <summary>
/// A device: the named front of a node tree that guests, exports and jobs use. It owns what belongs to the
/// user of the disk rather than to the image: statistics, throttling, the I/O error policy and io-status,
/// the medium and its tray.
/// </summary>
/// <remarks>
/// Every request takes the same path: wait while the device is stopped, wait for the throttle, enter the
/// drain gate, run on the root node; a failure goes to the error policy, which reports it, ignores it, or
/// stops the device and retries the request after 'cont'. Waiting for the throttle or for 'cont' happens
/// outside the gate, so a drain (eject, resize) never waits for a request that is itself waiting.
/// </remarks>
public sealed partial class BlockBackend
{
    private BlockNode? _root;

    internal BlockBackend(BlockGraph graph, string id, BlockNode root, BlockdevOnError rerror, BlockdevOnError werror)
    {
        Graph = graph;
        Id = id;
        _root = root;
        root.AddUser(this);
        ReadErrorPolicy = rerror;
        WriteErrorPolicy = werror;
    }

    public BlockGraph Graph { get; }

    public string Id { get; }

    /// <summary>The node tree behind the device; null when the medium was ejected.</summary>
    public BlockNode? Root => _root;

    public IoStats Stats { get; } = new();

    internal RequestGate Gate { get; } = new();

    public long Length => _root?.Length ?? 0;

    private BlockNode RootOrThrow() => Medium(_root);

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        await BeforeRequestAsync(false, buffer.Length, cancellationToken).ConfigureAwait(false);
        long start = Stopwatch.GetTimestamp();
        await RunAsync(new Read(offset, buffer), IoOperationType.Read, cancellationToken).ConfigureAwait(false);
        Stats.AccountRead(buffer.Length, start);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags = RequestFlags.None, CancellationToken cancellationToken = default)
    {
        await BeforeRequestAsync(true, data.Length, cancellationToken).ConfigureAwait(false);
        long start = Stopwatch.GetTimestamp();
        await RunAsync(new Write(offset, data, flags), IoOperationType.Write, cancellationToken).ConfigureAwait(false);
        Stats.AccountWrite(offset, data.Length, start);
    }

    public async ValueTask WriteZeroesAsync(long offset, long length, RequestFlags flags = RequestFlags.None, CancellationToken cancellationToken = default)
    {
        await BeforeRequestAsync(true, length, cancellationToken).ConfigureAwait(false);
        long start = Stopwatch.GetTimestamp();
        await RunAsync(new WriteZeroes(offset, length, flags), IoOperationType.Write, cancellationToken).ConfigureAwait(false);
        Stats.AccountWrite(offset, length, start);
    }

    public async ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        // Discards are not throttled (they move no data), but a stopped device holds them like the rest.
        await BeforeRequestAsync(null, 0, cancellationToken).ConfigureAwait(false);
        await RunAsync(new Discard(offset, length), IoOperationType.Write, cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask FlushAsync(CancellationToken cancellationToken = default)
    {
        await BeforeRequestAsync(null, 0, cancellationToken).ConfigureAwait(false);
        long start = Stopwatch.GetTimestamp();
        // A failed flush means written data may not be stable: it follows the write policy.
        await RunAsync(default(Flush), IoOperationType.Write, cancellationToken).ConfigureAwait(false);
        Stats.AccountFlush(start);
    }

    /// <summary>One request as a value, so the shared loop below runs it without a closure or allocation.</summary>
    private interface IRequest
    {
        ValueTask RunAsync(BlockNode? root, BlockBackend device, CancellationToken cancellationToken);
    }

    private readonly record struct Read(long Offset, Memory<byte> Buffer) : IRequest
    {
        public ValueTask RunAsync(BlockNode? root, BlockBackend device, CancellationToken ct) => device.Medium(root).ReadAsync(Offset, Buffer, ct);
    }

    private readonly record struct Write(long Offset, ReadOnlyMemory<byte> Data, RequestFlags Flags) : IRequest
    {
        public ValueTask RunAsync(BlockNode? root, BlockBackend device, CancellationToken ct) => device.Medium(root).WriteAsync(Offset, Data, Flags, ct);
    }

    private readonly record struct WriteZeroes(long Offset, long Length, RequestFlags Flags) : IRequest
    {
        public ValueTask RunAsync(BlockNode? root, BlockBackend device, CancellationToken ct) => device.Medium(root).WriteZeroesAsync(Offset, Length, Flags, ct);
    }

    private readonly record struct Discard(long Offset, long Length) : IRequest
    {
        public ValueTask RunAsync(BlockNode? root, BlockBackend device, CancellationToken ct) => device.Medium(root).DiscardAsync(Offset, Length, ct);
    }

    private readonly record struct Flush : IRequest
    {
        // Flushing an empty drive succeeds, as in QEMU.
        public ValueTask RunAsync(BlockNode? root, BlockBackend device, CancellationToken ct) => root?.FlushAsync(ct) ?? ValueTask.CompletedTask;
    }

    private BlockNode Medium(BlockNode? root) => root ?? throw new BlockException(Errno.ENOMEDIUM, $"Device '{Id}' has no medium");

    /// <summary>
    /// Runs a request inside the drain gate and applies the error policy to a failure; a request the
    /// policy held (stop) runs again after 'cont'.
    /// </summary>
    private async ValueTask RunAsync<T>(T request, IoOperationType operation, CancellationToken cancellationToken)
        where T : struct, IRequest
    {
        while (true)
        {
            BlockException? failure = null;
            await Gate.EnterAsync().ConfigureAwait(false);
            try
            {
                await request.RunAsync(_root, this, cancellationToken).ConfigureAwait(false);
            }
            catch (BlockException ex)
            {
                failure = ex;
            }
            finally
            {
                Gate.Leave();
            }

            if (failure == null || !await OnErrorAsync(failure, operation, cancellationToken).ConfigureAwait(false))
                return;
        }
    }

    /// <summary>Flushes the medium without the device's policies (no stop, no throttle); for shutdown.</summary>
    internal async ValueTask FlushMediumAsync(CancellationToken cancellationToken)
    {
        await Gate.EnterAsync().ConfigureAwait(false);
        try
        {
            if (_root is { ReadOnly: false } root)
                await root.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Gate.Leave();
        }
    }

    public async ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        await Gate.EnterAsync().ConfigureAwait(false);
        try
        {
            return await RootOrThrow().GetBlockStatusAsync(offset, length, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Gate.Leave();
        }
    }

    /// <summary>Waits while the device is stopped, then for the throttle (null direction: not throttled).</summary>
    private ValueTask BeforeRequestAsync(bool? isWrite, long bytes, CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _stopped) == null && (isWrite == null || _throttle == null))
            return ValueTask.CompletedTask;
        return BeforeRequestSlowAsync(isWrite, bytes, cancellationToken);
    }

    private async ValueTask BeforeRequestSlowAsync(bool? isWrite, long bytes, CancellationToken cancellationToken)
    {
        await WaitWhileStoppedAsync(cancellationToken).ConfigureAwait(false);
        if (isWrite is { } w && _throttle is { } t)
            await t.WaitAsync(w, bytes, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Changes the size of the medium, with no request in flight while it happens.</summary>
    public async ValueTask ResizeAsync(long size, CancellationToken cancellationToken = default)
    {
        var root = RootOrThrow();
        await Gate.BeginDrainAsync().ConfigureAwait(false);
        try
        {
            await root.TruncateAsync(size, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Gate.EndDrain();
        }
    }

    /// <summary>
    /// Waits for the device's requests in flight and holds new ones until the returned scope ends: what a
    /// QMP transaction does around its actions, so that they all take effect between the same two requests.
    /// </summary>
    public async ValueTask<DrainScope> DrainAsync()
    {
        await Gate.BeginDrainAsync().ConfigureAwait(false);
        return new DrainScope(Gate);
    }

    /// <summary>A seekable Stream over the device, for any .NET code that wants one.</summary>
    public Stream AsStream() => new BlockStream(this);
}
