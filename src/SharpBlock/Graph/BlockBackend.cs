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

    private BlockNode RootOrThrow() => _root ?? throw new BlockException(Errno.ENOMEDIUM, $"Device '{Id}' has no medium");

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        await BeforeRequestAsync(false, buffer.Length, cancellationToken).ConfigureAwait(false);
        long start = Stopwatch.GetTimestamp();
        while (true)
        {
            BlockException? failure = null;
            await Gate.EnterAsync().ConfigureAwait(false);
            try
            {
                await RootOrThrow().ReadAsync(offset, buffer, cancellationToken).ConfigureAwait(false);
            }
            catch (BlockException ex)
            {
                failure = ex;
            }
            finally
            {
                Gate.Leave();
            }

            if (failure == null || !await OnErrorAsync(failure, IoOperationType.Read, cancellationToken).ConfigureAwait(false))
                break;
        }

        Stats.AccountRead(buffer.Length, start);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags = RequestFlags.None, CancellationToken cancellationToken = default)
    {
        await BeforeRequestAsync(true, data.Length, cancellationToken).ConfigureAwait(false);
        long start = Stopwatch.GetTimestamp();
        while (true)
        {
            BlockException? failure = null;
            await Gate.EnterAsync().ConfigureAwait(false);
            try
            {
                await RootOrThrow().WriteAsync(offset, data, flags, cancellationToken).ConfigureAwait(false);
            }
            catch (BlockException ex)
            {
                failure = ex;
            }
            finally
            {
                Gate.Leave();
            }

            if (failure == null || !await OnErrorAsync(failure, IoOperationType.Write, cancellationToken).ConfigureAwait(false))
                break;
        }

        Stats.AccountWrite(offset, data.Length, start);
    }

    public async ValueTask WriteZeroesAsync(long offset, long length, RequestFlags flags = RequestFlags.None, CancellationToken cancellationToken = default)
    {
        await BeforeRequestAsync(true, length, cancellationToken).ConfigureAwait(false);
        long start = Stopwatch.GetTimestamp();
        while (true)
        {
            BlockException? failure = null;
            await Gate.EnterAsync().ConfigureAwait(false);
            try
            {
                await RootOrThrow().WriteZeroesAsync(offset, length, flags, cancellationToken).ConfigureAwait(false);
            }
            catch (BlockException ex)
            {
                failure = ex;
            }
            finally
            {
                Gate.Leave();
            }

            if (failure == null || !await OnErrorAsync(failure, IoOperationType.Write, cancellationToken).ConfigureAwait(false))
                break;
        }

        Stats.AccountWrite(offset, length, start);
    }

    public async ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        // Discards are not throttled (they move no data), but a stopped device holds them like the rest.
        await BeforeRequestAsync(null, 0, cancellationToken).ConfigureAwait(false);
        while (true)
        {
            BlockException? failure = null;
            await Gate.EnterAsync().ConfigureAwait(false);
            try
            {
                await RootOrThrow().DiscardAsync(offset, length, cancellationToken).ConfigureAwait(false);
            }
            catch (BlockException ex)
            {
                failure = ex;
            }
            finally
            {
                Gate.Leave();
            }

            if (failure == null || !await OnErrorAsync(failure, IoOperationType.Write, cancellationToken).ConfigureAwait(false))
                break;
        }
    }

    public async ValueTask FlushAsync(CancellationToken cancellationToken = default)
    {
        await BeforeRequestAsync(null, 0, cancellationToken).ConfigureAwait(false);
        long start = Stopwatch.GetTimestamp();
        while (true)
        {
            BlockException? failure = null;
            await Gate.EnterAsync().ConfigureAwait(false);
            try
            {
                if (_root != null)
                    await _root.FlushAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (BlockException ex)
            {
                failure = ex;
            }
            finally
            {
                Gate.Leave();
            }

            // A failed flush means written data may not be stable: it follows the write policy.
            if (failure == null || !await OnErrorAsync(failure, IoOperationType.Write, cancellationToken).ConfigureAwait(false))
                break;
        }

        Stats.AccountFlush(start);
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

    /// <summary>A seekable Stream over the device, for any .NET code that wants one.</summary>
    public Stream AsStream() => new BlockStream(this);
}
