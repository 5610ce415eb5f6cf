using System.Diagnostics;
using System.Runtime.CompilerServices;
using SharpBlock.Errors;
using SharpBlock.Io;
using SharpBlock.Schema;

namespace SharpBlock.Graph;

/// <summary>
/// A device: the named front of a node tree that guests, exports and jobs use. It owns what belongs to the
/// user of the disk rather than to the image: statistics, the I/O error policy and io-status, the medium.
/// </summary>
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

    public BlockdevOnError ReadErrorPolicy { get; }

    public BlockdevOnError WriteErrorPolicy { get; }

    /// <summary>io-status is kept only where a policy can stop the device, as QEMU shows it.</summary>
    public bool IoStatusEnabled => WriteErrorPolicy is BlockdevOnError.Stop or BlockdevOnError.Enospc
        || ReadErrorPolicy is BlockdevOnError.Stop or BlockdevOnError.Enospc;

    public BlockDeviceIoStatus IoStatus { get; private set; } = BlockDeviceIoStatus.Ok;

    /// <summary>Devices made by blockdev-add have no guest device model, so like QEMU they count as removable.</summary>
    public bool Removable => true;

    public bool Locked => false;

    public bool TrayOpen => false;

    public long Length => _root?.Length ?? 0;

    private BlockNode RootOrThrow() => _root ?? throw new BlockException(Errno.ENOMEDIUM, $"Device '{Id}' has no medium");

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        await Gate.EnterAsync().ConfigureAwait(false);
        long start = Stopwatch.GetTimestamp();
        try
        {
            await RootOrThrow().ReadAsync(offset, buffer, cancellationToken).ConfigureAwait(false);
            Stats.AccountRead(buffer.Length, start);
        }
        catch (BlockException ex)
        {
            NoteError(ex);
            throw;
        }
        finally
        {
            Gate.Leave();
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags = RequestFlags.None, CancellationToken cancellationToken = default)
    {
        await Gate.EnterAsync().ConfigureAwait(false);
        long start = Stopwatch.GetTimestamp();
        try
        {
            await RootOrThrow().WriteAsync(offset, data, flags, cancellationToken).ConfigureAwait(false);
            Stats.AccountWrite(offset, data.Length, start);
        }
        catch (BlockException ex)
        {
            NoteError(ex);
            throw;
        }
        finally
        {
            Gate.Leave();
        }
    }

    public async ValueTask WriteZeroesAsync(long offset, long length, RequestFlags flags = RequestFlags.None, CancellationToken cancellationToken = default)
    {
        await Gate.EnterAsync().ConfigureAwait(false);
        long start = Stopwatch.GetTimestamp();
        try
        {
            await RootOrThrow().WriteZeroesAsync(offset, length, flags, cancellationToken).ConfigureAwait(false);
            Stats.AccountWrite(offset, length, start);
        }
        catch (BlockException ex)
        {
            NoteError(ex);
            throw;
        }
        finally
        {
            Gate.Leave();
        }
    }

    public async ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        await Gate.EnterAsync().ConfigureAwait(false);
        try
        {
            await RootOrThrow().DiscardAsync(offset, length, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Gate.Leave();
        }
    }

    public async ValueTask FlushAsync(CancellationToken cancellationToken = default)
    {
        await Gate.EnterAsync().ConfigureAwait(false);
        long start = Stopwatch.GetTimestamp();
        try
        {
            if (_root != null)
                await _root.FlushAsync(cancellationToken).ConfigureAwait(false);
            Stats.AccountFlush(start);
        }
        catch (BlockException ex)
        {
            NoteError(ex);
            throw;
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

    private void NoteError(BlockException ex)
    {
        if (IoStatusEnabled && IoStatus == BlockDeviceIoStatus.Ok)
            IoStatus = ex.Errno == Errno.ENOSPC ? BlockDeviceIoStatus.Nospace : BlockDeviceIoStatus.Failed;
    }

    /// <summary>Resets io-status to ok (what 'cont' does).</summary>
    public void ResetIoStatus() => IoStatus = BlockDeviceIoStatus.Ok;

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
    /// Raised after the medium was removed (eject, blockdev-del). Users that outlive a medium, such as NBD
    /// exports, end themselves here as QEMU's close notifiers do.
    /// </summary>
    public event Action<BlockBackend>? MediumRemoved;

    /// <summary>Removes the medium: drains, flushes and closes the node tree unless something else holds it.</summary>
    public async ValueTask EjectAsync()
    {
        var root = _root;
        if (root == null)
            return;
        await Gate.BeginDrainAsync().ConfigureAwait(false);
        try
        {
            _root = null;
            root.RemoveUser(this);
            if (root.Users.Count == 0)
                await Graph.CloseNodeAsync(root).ConfigureAwait(false);
            else
                await root.FlushAsync().ConfigureAwait(false);
        }
        finally
        {
            Gate.EndDrain();
        }

        MediumRemoved?.Invoke(this);
    }

    /// <summary>A seekable Stream over the device, for any .NET code that wants one.</summary>
    public Stream AsStream() => new BlockStream(this);
}
