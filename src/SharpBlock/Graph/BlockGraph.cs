using System.Globalization;
using SharpBlock.Errors;
using SharpBlock.Schema;

namespace SharpBlock.Graph;

/// <summary>
/// Every node and device of one daemon or program. Graph changes are serialised by one async lock; I/O
/// never takes it.
/// </summary>
public sealed class BlockGraph : IAsyncDisposable
{
    private readonly Dictionary<string, BlockNode> _nodes = new(StringComparer.Ordinal);
    private readonly List<BlockNode> _nodeOrder = [];
    private readonly List<BlockBackend> _devices = [];
    private readonly SemaphoreSlim _lock = new(1, 1);

    // Guards _nodes and _nodeOrder: nodes are closed from jobs and ejects outside the graph lock.
    private readonly object _registry = new();
    private int _nextNodeNumber;

    public BlockGraph(BlockDriverRegistry? drivers = null)
    {
        Drivers = drivers ?? BlockDriverRegistry.Default;
    }

    public BlockDriverRegistry Drivers { get; }

    public BlockEvents Events { get; } = new();

    /// <summary>Secrets from --object secret, for images that name one (encrypt.key-secret).</summary>
    public SecretStore Secrets { get; } = new();

    public Jobs.JobManager Jobs { get; } = new();

    public IReadOnlyList<BlockBackend> Devices => _devices;

    /// <summary>Every open node, in the order they were opened (a snapshot).</summary>
    public IReadOnlyList<BlockNode> Nodes
    {
        get
        {
            lock (_registry)
                return [.. _nodeOrder];
        }
    }

    public BlockNode? FindNode(string name)
    {
        lock (_registry)
            return _nodes.GetValueOrDefault(name);
    }

    public BlockBackend? FindDevice(string id)
    {
        foreach (var d in _devices)
        {
            if (d.Id == id)
                return d;
        }

        return null;
    }

    /// <summary>
    /// A device over an existing node that is not listed among the user's devices: what an export of a bare
    /// node (qemu-storage-daemon's --export node-name=) reads and writes through, so it still has statistics
    /// and an error policy. It counts as a user of the node, which therefore cannot be deleted under it.
    /// </summary>
    public BlockBackend CreateAnonymousDevice(BlockNode root, string name) =>
        new(this, name, root, BlockdevOnError.Report, BlockdevOnError.Report);

    /// <summary>Holds the graph lock; for callers that change the graph in several steps.</summary>
    public async ValueTask<IDisposable> LockAsync(CancellationToken cancellationToken = default)
    {
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        return new Releaser(_lock);
    }

    private sealed class Releaser(SemaphoreSlim s) : IDisposable
    {
        private SemaphoreSlim? _s = s;

        public void Dispose() => Interlocked.Exchange(ref _s, null)?.Release();
    }

    /// <summary>
    /// blockdev-add: opens a node tree. With an 'id' the root becomes a device of that name; with only a
    /// node-name it stays a named node that devices, exports and jobs can refer to.
    /// </summary>
    public ValueTask<BlockNode> AddAsync(BlockdevOptions options, CancellationToken cancellationToken = default) =>
        AddAsync(options, NodeSettings.Default, cancellationToken);

    /// <summary>
    /// As <see cref="AddAsync(BlockdevOptions, CancellationToken)"/>, with settings the options cannot say
    /// (<see cref="NodeSettings.ForCheck"/>) passed down the whole tree.
    /// </summary>
    public async ValueTask<BlockNode> AddAsync(BlockdevOptions options, NodeSettings inherited, CancellationToken cancellationToken = default)
    {
        using (await LockAsync(cancellationToken).ConfigureAwait(false))
        {
            string? id = options.Id;
            if (id == null && options.NodeName == null)
                throw new BlockException(Errno.EINVAL, "Block device needs an 'id' or a 'node-name'");
            if (id != null)
            {
                CheckName(id, "id");
                if (FindDevice(id) != null)
                    throw new BlockException(Errno.EEXIST, $"Device with id '{id}' already exists");
                if (FindNode(id) != null)
                    throw new BlockException(Errno.EEXIST, $"Device name '{id}' conflicts with an existing node name");
                if (options.NodeName == id)
                    throw new BlockException(Errno.EEXIST, $"Device name '{id}' conflicts with an existing node name");
            }

            // Running out of space is something only a write can do.
            if (options.Rerror == BlockdevOnError.Enospc)
                throw new BlockException(Errno.EINVAL, "'enospc' invalid read error action");

            var opened = new List<BlockNode>();
            try
            {
                var root = await OpenTreeAsync(options, inherited, opened, cancellationToken, topLevel: true).ConfigureAwait(false);
                if (id != null)
                {
                    _devices.Add(new BlockBackend(this, id, root,
                        options.Rerror ?? BlockdevOnError.Report, options.Werror ?? BlockdevOnError.Enospc));
                }
                else
                {
                    root.MonitorOwned = true;
                }

                return root;
            }
            catch
            {
                for (int i = opened.Count - 1; i >= 0; i--)
                {
                    Unregister(opened[i]);
                    await opened[i].DisposeAsync().ConfigureAwait(false);
                }

                throw;
            }
        }
    }

    /// <summary>
    /// Opens a node tree that no device uses yet (the new medium of 'change'); its root gets a generated
    /// name. The caller inserts it somewhere or closes it with <see cref="CloseUnusedAsync"/>.
    /// </summary>
    public async ValueTask<BlockNode> OpenDetachedAsync(BlockdevOptions options, CancellationToken cancellationToken = default)
    {
        using (await LockAsync(cancellationToken).ConfigureAwait(false))
        {
            var opened = new List<BlockNode>();
            try
            {
                return await OpenTreeAsync(options, NodeSettings.Default, opened, cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                for (int i = opened.Count - 1; i >= 0; i--)
                {
                    Unregister(opened[i]);
                    await opened[i].DisposeAsync().ConfigureAwait(false);
                }

                throw;
            }
        }
    }

    /// <summary>Closes a node tree that ended up unused (a medium that could not be inserted).</summary>
    public async ValueTask CloseUnusedAsync(BlockNode node)
    {
        using (await LockAsync().ConfigureAwait(false))
        {
            if (node.Users.Count == 0 && !node.MonitorOwned)
                await CloseNodeAsync(node).ConfigureAwait(false);
        }
    }

    private static void CheckName(string name, string what)
    {
        // QEMU's rule: a letter first, then letters, digits, '-', '.', '_'.
        bool ok = name.Length > 0 && char.IsAsciiLetter(name[0]);
        foreach (char c in name)
            ok &= char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_';
        if (!ok)
            throw new BlockException(Errno.EINVAL, $"Invalid {what}: '{name}'");
    }

    internal async ValueTask<BlockNode> OpenTreeAsync(BlockdevOptions options, NodeSettings inherited, List<BlockNode> opened,
        CancellationToken cancellationToken, bool topLevel = false, System.Collections.Immutable.ImmutableHashSet<string>? images = null)
    {
        images ??= System.Collections.Immutable.ImmutableHashSet<string>.Empty;
        if (BlockOpenContext.ImageFileOf(options) is { } image)
        {
            // A chain that names an image already being opened above would open forever.
            if (images.Contains(image))
                throw new BlockException(Errno.ELOOP, $"Backing file '{image}' creates an infinite loop");
            images = images.Add(image);
        }

        if (!topLevel && options.Id != null)
            throw new BlockException(Errno.EINVAL, "'id' is only allowed on the top level of blockdev-add");
        if (options.NodeName is { } nn)
        {
            CheckName(nn, "node-name");
            if (FindNode(nn) != null)
                throw new BlockException(Errno.EEXIST, $"Duplicate nodes with node-name='{nn}'");
            if (FindDevice(nn) != null)
                throw new BlockException(Errno.EEXIST, $"node-name={nn} is conflicting with a device id");
        }

        if (!Drivers.TryGet(options.Driver, out var opener))
            throw new BlockException(Errno.EOPNOTSUPP, $"Driver '{options.Driver.ToWire()}' is not supported");
        var settings = inherited.Apply(options);
        // Accepting native AIO and quietly using the thread pool would let a user believe requests go
        // through io_submit; there is no maintained .NET binding for Linux AIO or io_uring to build it on.
        if (options.Aio == BlockdevAioOptions.Native)
            throw new BlockException(Errno.EOPNOTSUPP, "aio=native is not supported: requests run on the thread pool (aio=threads)");
        var ctx = new BlockOpenContext(this, options, settings, opened, images);
        var node = await opener(ctx, cancellationToken).ConfigureAwait(false);
        node.OwnerGraph = this;
        node.NodeName = options.NodeName ?? "#block" + (_nextNodeNumber++).ToString("D3", CultureInfo.InvariantCulture);

        opened.Add(node);
        lock (_registry)
        {
            if (!_nodes.TryAdd(node.NodeName, node))
                throw new BlockException(Errno.EEXIST, $"Duplicate nodes with node-name='{node.NodeName}'");
            _nodeOrder.Add(node);
        }

        return node;
    }

    private void Unregister(BlockNode node)
    {
        lock (_registry)
        {
            if (_nodes.TryGetValue(node.NodeName, out var n) && ReferenceEquals(n, node))
                _nodes.Remove(node.NodeName);
            _nodeOrder.Remove(node);
        }
    }

    /// <summary>Opens an image file as an unnamed node tree (a job's target); close it with <see cref="CloseUnusedAsync"/>.</summary>
    public ValueTask<BlockNode> OpenImageAsync(string path, BlockdevDriver format, bool readOnly = false, CancellationToken cancellationToken = default)
    {
        var options = SharpBlock.Drivers.ImageFormats.FileOptions(format, path);
        options.ReadOnly = readOnly;
        return OpenDetachedAsync(options, cancellationToken);
    }

    /// <summary>Closes a node nobody uses any more, and with it the children only it used.</summary>
    internal async ValueTask CloseNodeAsync(BlockNode node)
    {
        await node.DisposeAsync().ConfigureAwait(false);
        foreach (var n in Nodes)
        {
            if (n.IsClosed)
                Unregister(n);
        }
    }

    /// <summary>blockdev-del: removes a device (by id) or an unused node (by node-name).</summary>
    public async ValueTask DeleteAsync(string name, CancellationToken cancellationToken = default)
    {
        using (await LockAsync(cancellationToken).ConfigureAwait(false))
        {
            if (FindDevice(name) is { } dev)
            {
                Jobs.EnsureIdle(dev);
                await dev.EjectAsync().ConfigureAwait(false);
                _devices.Remove(dev);
                return;
            }

            // QEMU 7.2's checks, in its order and words: only what blockdev-add made, not while a job works on
            // it or holds it as a target, not while another node or a device uses it.
            var node = FindNode(name) ?? throw new BlockException(Errno.ENOENT, $"Failed to find node with node-name='{name}'");
            if (!node.MonitorOwned)
                throw new BlockException(Errno.EPERM, $"Node {name} is not owned by the monitor");
            foreach (var job in Jobs.Snapshot())
            {
                if (job.HasDevice && job.Device.Root == node && Jobs.Find(job.Device.Id) == job)
                    throw new BlockException(Errno.EBUSY, $"Node '{name}' is busy: block device is in use by block job: {job.Type.ToWire()}");
                if (job.Target == node && !job.Cleaned.IsCompleted)
                    throw new BlockException(Errno.EBUSY, $"Node {name} is in use");
            }

            // 7.2 words a parent node and a device or export (a BlockBackend there) differently.
            if (node.Users.Any(u => u is BlockNode))
                throw new BlockException(Errno.EBUSY, $"Block device {name} is in use");
            if (node.Users.Count > 0)
                throw new BlockException(Errno.EBUSY, $"Node {name} is in use");

            node.MonitorOwned = false;
            await CloseNodeAsync(node).ConfigureAwait(false);
        }
    }

    /// <summary>Flushes every device and node; what 'quit' and a signal do before exit.</summary>
    public async ValueTask FlushAllAsync(CancellationToken cancellationToken = default)
    {
        // Straight to the media: a device stopped by its error policy would hold a device-level flush
        // until 'cont', and a failing flush must not stop or hang the exit.
        foreach (var d in _devices.ToArray())
            await d.FlushMediumAsync(cancellationToken).ConfigureAwait(false);
        foreach (var n in Nodes)
        {
            if (!n.ReadOnly && !n.IsClosed)
                await n.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Jobs.CancelAllAsync().ConfigureAwait(false);
        using (await LockAsync().ConfigureAwait(false))
        {
            foreach (var d in _devices.ToArray())
                await d.EjectAsync().ConfigureAwait(false);
            _devices.Clear();
            var nodes = Nodes;
            // Parents first: a node's disposal closes children that only it used.
            for (int i = nodes.Count - 1; i >= 0; i--)
            {
                var n = nodes[i];
                if (!n.IsClosed && n.Users.Count == 0)
                    await n.DisposeAsync().ConfigureAwait(false);
            }

            foreach (var n in nodes)
            {
                if (!n.IsClosed)
                    await n.DisposeAsync().ConfigureAwait(false);
            }

            lock (_registry)
            {
                _nodes.Clear();
                _nodeOrder.Clear();
            }
        }

        _lock.Dispose();
    }
}
