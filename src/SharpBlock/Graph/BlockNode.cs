using System.Buffers;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using SharpBlock.Errors;
using SharpBlock.Io;
using SharpBlock.Schema;

namespace SharpBlock.Graph;

/// <summary>
/// One driver instance in the graph. The public request methods are the same for every driver and do what
/// every layer needs (bounds and permission checks, drain gate, detect-zeroes, statistics); drivers implement
/// the protected *Core methods and see only requests that passed those checks.
/// </summary>
public abstract partial class BlockNode : IAsyncDisposable
{
    private readonly List<BlockChild> _children = [];
    private readonly List<object> _parents = [];
    private int _closed;

    protected BlockNode(NodeSettings settings)
    {
        Settings = settings;
    }

    /// <summary>The driver's name as QMP shows it ('file', 'raw', 'qcow2'...).</summary>
    public abstract string DriverName { get; }

    /// <summary>The node's name; set by the graph (given by the user or generated).</summary>
    public string NodeName { get; internal set; } = "";


    public NodeSettings Settings { get; protected set; }

    public bool ReadOnly => Settings.ReadOnly;

    /// <summary>The guest-visible size in bytes.</summary>
    public abstract long Length { get; }

    /// <summary>Alignment in bytes that requests reaching *Core must respect; the node handles the rest itself.</summary>
    public virtual int RequestAlignment => 1;

    /// <summary>
    /// Protocol nodes that a format grows into (a file) accept writes past their end and read zeros there;
    /// everything else holds requests to its length.
    /// </summary>
    protected virtual bool Growable => false;

    /// <summary>The file name QMP reports for this node (its own, or that of the file below a format).</summary>
    public virtual string Filename => File?.Filename ?? "";

    public IoStats Stats { get; } = new();

    internal RequestGate Gate { get; } = new();

    public IReadOnlyList<BlockChild> Children => _children;

    /// <summary>
    /// Called by a parent that keeps metadata in this node's data (an image format such as qcow2): nobody
    /// else may write or resize the image under it, even while it only reads. Protocol nodes take the
    /// matching image locks; filters pass the request down.
    /// </summary>
    public virtual void RefuseOtherWriters()
    {
        for (int i = 0; i < _children.Count; i++)
            _children[i].Node.RefuseOtherWriters();
    }

    public BlockNode? File => FindChild(ChildRole.File);

    public BlockNode? Backing => FindChild(ChildRole.Backing);

    /// <summary>Who holds this node: parent nodes, devices, jobs, exports. A node with users cannot be deleted.</summary>
    public IReadOnlyList<object> Users => _parents;

    /// <summary>
    /// A root that blockdev-add made without a device (QEMU's monitor-owned node): it stays open when its
    /// users let go of it, until blockdev-del removes it.
    /// </summary>
    public bool MonitorOwned { get; internal set; }

    public virtual bool Encrypted => false;

    public virtual bool EncryptionKeyMissing => false;

    /// <summary>The backing file name recorded in the image, if the format has one.</summary>
    public virtual string? BackingFileName => null;

    /// <summary>The backing format recorded in the image, if any.</summary>
    public virtual string? BackingFormat => null;

    private BlockNode? FindChild(ChildRole role)
    {
        foreach (var c in _children)
        {
            if (c.Role == role)
                return c.Node;
        }

        return null;
    }

    protected BlockChild AttachChild(BlockNode node, ChildRole role, string name)
    {
        var child = new BlockChild(this, node, role, name);
        node.AddUser(this);
        _children.Add(child);
        return child;
    }

    protected void DetachChild(BlockChild child)
    {
        _children.Remove(child);
        child.Node.RemoveUser(this);
    }

    internal void AddUser(object user)
    {
        bool first;
        lock (_parents)
            first = _parents.Count == 0;
        // Before the user counts: a node that cannot take back what its users need (another process took the
        // image's write lock meanwhile) refuses the user, and nothing changed.
        if (first && !IsClosed)
            OnFirstUser();
        lock (_parents)
            _parents.Add(user);
    }

    internal void RemoveUser(object user)
    {
        bool last;
        lock (_parents)
            last = _parents.Remove(user) && _parents.Count == 0;
        if (last && MonitorOwned && !IsClosed)
            OnLastUserGone();
    }

    /// <summary>
    /// A node that blockdev-add made and that nobody uses any more holds no permissions in QEMU (they are the
    /// union of its parents'); a protocol node lets go of the image locks that stood for them, so other
    /// processes may open the image while the node waits for a new user.
    /// </summary>
    private protected virtual void OnLastUserGone()
    {
    }

    /// <summary>The node is used again after <see cref="OnLastUserGone"/> (or for the first time): it takes back what users need.</summary>
    private protected virtual void OnFirstUser()
    {
    }

    // ---- The request path -------------------------------------------------------------------------

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        CheckRange(offset, buffer.Length);
        await Gate.EnterAsync().ConfigureAwait(false);
        long start = Stopwatch.GetTimestamp();
        try
        {
            if (buffer.Length > 0)
                await ReadCoreAsync(offset, buffer, cancellationToken).ConfigureAwait(false);
            Stats.AccountRead(buffer.Length, start);
        }
        finally
        {
            Gate.Leave();
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags = RequestFlags.None, CancellationToken cancellationToken = default)
    {
        CheckWritable();
        CheckRange(offset, data.Length);
        await Gate.EnterAsync().ConfigureAwait(false);
        long start = Stopwatch.GetTimestamp();
        try
        {
            if (HasObservers)
                await NotifyBeforeWriteAsync(offset, data.Length, cancellationToken).ConfigureAwait(false);
            if (data.Length > 0)
            {
                if (Settings.DetectZeroes != BlockdevDetectZeroesOptions.Off && !data.Span.ContainsAnyExcept((byte)0))
                {
                    var zf = flags & RequestFlags.Fua;
                    if (Settings.DetectZeroes == BlockdevDetectZeroesOptions.Unmap && Settings.Discard == BlockdevDiscardOptions.Unmap)
                        zf |= RequestFlags.MayUnmap;
                    await WriteZeroesCoreAsync(offset, data.Length, zf, cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    await WriteCoreAsync(offset, data, flags, cancellationToken).ConfigureAwait(false);
                }

                if (!Settings.Writeback)
                    await FlushCoreAsync(cancellationToken).ConfigureAwait(false);
            }

            Stats.AccountWrite(offset, data.Length, start);
        }
        finally
        {
            if (HasObservers)
                NotifyAfterWrite(offset, data.Length);
            if (!_bitmaps.IsEmpty)
                MarkBitmaps(offset, data.Length);
            Gate.Leave();
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask WriteZeroesAsync(long offset, long length, RequestFlags flags = RequestFlags.None, CancellationToken cancellationToken = default)
    {
        CheckWritable();
        CheckRange(offset, length);
        if (Settings.Discard != BlockdevDiscardOptions.Unmap)
            flags &= ~RequestFlags.MayUnmap;
        await Gate.EnterAsync().ConfigureAwait(false);
        long start = Stopwatch.GetTimestamp();
        try
        {
            if (HasObservers)
                await NotifyBeforeWriteAsync(offset, length, cancellationToken).ConfigureAwait(false);
            if (length > 0)
            {
                await WriteZeroesCoreAsync(offset, length, flags, cancellationToken).ConfigureAwait(false);
                if (!Settings.Writeback)
                    await FlushCoreAsync(cancellationToken).ConfigureAwait(false);
            }

            Stats.AccountWrite(offset, length, start);
        }
        finally
        {
            if (HasObservers)
                NotifyAfterWrite(offset, length);
            if (!_bitmaps.IsEmpty)
                MarkBitmaps(offset, length);
            Gate.Leave();
        }
    }

    /// <summary>Tells the node the range is no longer needed. Ignored unless discard=unmap, as in QEMU.</summary>
    public async ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        CheckWritable();
        CheckRange(offset, length);
        if (Settings.Discard != BlockdevDiscardOptions.Unmap || length == 0)
            return;
        await Gate.EnterAsync().ConfigureAwait(false);
        try
        {
            if (HasObservers)
                await NotifyBeforeWriteAsync(offset, length, cancellationToken).ConfigureAwait(false);
            await DiscardCoreAsync(offset, length, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (HasObservers)
                NotifyAfterWrite(offset, length);
            if (!_bitmaps.IsEmpty)
                MarkBitmaps(offset, length);
            Gate.Leave();
        }
    }

    public async ValueTask FlushAsync(CancellationToken cancellationToken = default)
    {
        await Gate.EnterAsync().ConfigureAwait(false);
        long start = Stopwatch.GetTimestamp();
        try
        {
            await FlushCoreAsync(cancellationToken).ConfigureAwait(false);
            Stats.AccountFlush(start);
        }
        finally
        {
            Gate.Leave();
        }
    }

    /// <summary>The status of the run of bytes starting at offset (at most length bytes, at least one).</summary>
    public async ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        long len = Length;
        if (offset < 0 || length <= 0 || offset >= len)
            throw new BlockException(Errno.EINVAL, $"Block status request at {offset}+{length} outside the node's {len} bytes");
        length = Math.Min(length, len - offset);
        await Gate.EnterAsync().ConfigureAwait(false);
        try
        {
            var st = await BlockStatusCoreAsync(offset, length, cancellationToken).ConfigureAwait(false);
            if (st.Length <= 0 || st.Length > length)
                st = st with { Length = length };
            return st;
        }
        finally
        {
            Gate.Leave();
        }
    }

    public async ValueTask TruncateAsync(long size, CancellationToken cancellationToken = default)
    {
        CheckWritable();
        if (size < 0)
            throw new BlockException(Errno.EINVAL, "New size must not be negative");
        await Gate.BeginDrainAsync().ConfigureAwait(false);
        try
        {
            await TruncateCoreAsync(size, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (!_bitmaps.IsEmpty)
                ResizeBitmaps(Length);
            Gate.EndDrain();
        }
    }

    /// <summary>Waits for every request in flight on this node and holds new ones until the returned scope ends.</summary>
    public async ValueTask<DrainScope> DrainAsync()
    {
        await Gate.BeginDrainAsync().ConfigureAwait(false);
        return new DrainScope(Gate);
    }

    // ---- What drivers implement -------------------------------------------------------------------

    protected abstract ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken);

    protected abstract ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags, CancellationToken cancellationToken);

    /// <summary>Default: writes zeros from a pooled buffer. Drivers with a cheaper way override it.</summary>
    protected virtual async ValueTask WriteZeroesCoreAsync(long offset, long length, RequestFlags flags, CancellationToken cancellationToken)
    {
        if ((flags & RequestFlags.NoFallback) != 0)
            throw new BlockException(Errno.EOPNOTSUPP, "Fast zeroing is not supported by " + DriverName);
        const int Chunk = 1 << 20;
        byte[] zeros = ArrayPool<byte>.Shared.Rent((int)Math.Min(Chunk, length));
        try
        {
            Array.Clear(zeros);
            while (length > 0)
            {
                int n = (int)Math.Min(zeros.Length, length);
                await WriteCoreAsync(offset, zeros.AsMemory(0, n), flags & RequestFlags.Fua, cancellationToken).ConfigureAwait(false);
                offset += n;
                length -= n;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(zeros);
        }
    }

    protected virtual ValueTask DiscardCoreAsync(long offset, long length, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    protected abstract ValueTask FlushCoreAsync(CancellationToken cancellationToken);

    protected virtual ValueTask<BlockStatus> BlockStatusCoreAsync(long offset, long length, CancellationToken cancellationToken) =>
        ValueTask.FromResult(new BlockStatus(BlockStatusFlags.Data | BlockStatusFlags.Allocated, length));

    protected virtual ValueTask TruncateCoreAsync(long size, CancellationToken cancellationToken) =>
        throw new BlockException(Errno.EOPNOTSUPP, $"Driver '{DriverName}' cannot change the image size");

    /// <summary>Fills in what the format knows about itself for query-block and img info.</summary>
    public virtual async ValueTask<ImageInfo> GetImageInfoAsync(CancellationToken cancellationToken = default)
    {
        var info = new ImageInfo
        {
            Filename = Filename,
            Format = DriverName,
            VirtualSize = Length,
            // QEMU reports the flag only when the driver stack answers its info query, which NBD does not.
            DirtyFlag = HasDriverInfo ? false : null,
        };
        long actual = await GetAllocatedFileSizeAsync(cancellationToken).ConfigureAwait(false);
        if (actual >= 0)
            info.ActualSize = actual;
        if (Encrypted)
            info.Encrypted = true;
        if (BackingFileName is { } bf)
        {
            info.BackingFilename = bf;
            // Without the backing node (not opened, as img info does) the name resolves as the open would resolve it.
            info.FullBackingFilename = Backing?.Filename ?? Drivers.BackingFiles.Resolve(Filename, bf);
            if (BackingFormat is { } fmt)
                info.BackingFilenameFormat = fmt;
        }

        if (Backing is { } b)
            info.BackingImage = await b.GetImageInfoAsync(cancellationToken).ConfigureAwait(false);
        return info;
    }

    /// <summary>Whether the driver has state to report beyond size (QEMU's get_info); filters and formats ask their file.</summary>
    public virtual bool HasDriverInfo => File?.HasDriverInfo ?? true;

    /// <summary>Bytes the image occupies on the host (allocated blocks), or -1 when unknown.</summary>
    public virtual ValueTask<long> GetAllocatedFileSizeAsync(CancellationToken cancellationToken = default) =>
        File?.GetAllocatedFileSizeAsync(cancellationToken) ?? ValueTask.FromResult(-1L);

    /// <summary>Flushes and releases what the driver holds. Children are closed by the graph afterwards.</summary>
    protected virtual ValueTask CloseCoreAsync() => ValueTask.CompletedTask;

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0)
            return;
        GC.SuppressFinalize(this);
        await using (await DrainAsync().ConfigureAwait(false))
        {
            try
            {
                if (!ReadOnly)
                    await FlushCoreAsync(CancellationToken.None).ConfigureAwait(false);
            }
            catch (BlockException)
            {
                // Closing goes on whatever the last flush said: a node whose storage is gone (a lost NBD
                // server, a yanked disk) must still release its children and handles. Callers that need the
                // verdict flush explicitly first (quit and SIGTERM do, and report a failure in the exit code).
            }
            finally
            {
                await CloseCoreAsync().ConfigureAwait(false);
            }
        }

        foreach (var c in _children.ToArray())
        {
            DetachChild(c);
            if (c.Node.Users.Count == 0 && !c.Node.MonitorOwned)
                await c.Node.DisposeAsync().ConfigureAwait(false);
        }
    }

    public bool IsClosed => Volatile.Read(ref _closed) != 0;

    // ---- Checks shared by every request ------------------------------------------------------------

    private void CheckWritable()
    {
        if (ReadOnly)
            ThrowReadOnly();
    }

    private void CheckRange(long offset, long length)
    {
        if (offset < 0 || length < 0 || (!Growable && offset > Length - length))
            ThrowOutOfRange(offset, length);
    }

    private void ThrowReadOnly() =>
        throw new BlockException(Errno.EPERM, $"Node '{NodeName}' is read-only");

    private void ThrowOutOfRange(long offset, long length) =>
        throw new BlockException(Errno.EINVAL, $"Request {offset}+{length} is outside node '{NodeName}' ({Length} bytes)");
}

/// <summary>Ends a drain when disposed.</summary>
public readonly struct DrainScope : IAsyncDisposable, IDisposable
{
    private readonly RequestGate? _gate;

    internal DrainScope(RequestGate gate) => _gate = gate;

    public void Dispose() => _gate?.EndDrain();

    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }
}
