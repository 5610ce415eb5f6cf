using System.Net;
using SharpBlock.Bitmaps;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Net;
using SharpBlock.Schema;

namespace SharpBlock.Nbd.Server;

/// <summary>
/// The daemon's one NBD server and its block exports, whichever front drives it: QMP's nbd-server-* and
/// block-export-* commands or the daemon's --nbd-server/--export options. Each export is listed from its add
/// until its last client has left, and BLOCK_EXPORT_DELETED goes out when it is gone. Failures are BlockExceptions in QEMU's wording, so
/// scripts written for QEMU read them unchanged; the errno tells a front what kind of failure it is
/// (ENODEV: no such device; <see cref="EncryptionKeyRequiredException"/>: the medium waits for its key).
/// </summary>
public sealed class NbdService : IAsyncDisposable
{
    private readonly BlockGraph _graph;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private NbdServer? _server;

    // Every block export, the oldest first; one being taken away stays listed until its last client left.
    private readonly List<ExportEntry> _entries = [];

    public NbdService(BlockGraph graph)
    {
        _graph = graph;
    }

    public bool Running => _server != null;

    /// <summary>The running server, for callers that want its state (tests, query commands).</summary>
    public NbdServer? Server => _server;

    /// <summary>The bound TCP endpoint when listening on inet (useful with port 0), else null.</summary>
    public IPEndPoint? TcpEndPoint { get; private set; }

    /// <summary>nbd-server-start; <paramref name="maxConnections"/> caps the clients connected at once (0: no cap).</summary>
    public async ValueTask StartAsync(SharpBlock.Schema.SocketAddress addr, uint maxConnections = 0)
    {
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_server != null)
                throw new BlockException(Errno.EBUSY, "NBD server already running");
            var server = new NbdServer(Limits(maxConnections));
            try
            {
                switch (addr.Type)
                {
                    case SocketAddressKind.Inet when addr.Inet is { } inet:
                        {
                            var where = InetListenAddress.Resolve(inet);
                            TcpEndPoint = server.ListenTcp(where.Addresses, where.FirstPort, where.LastPort);
                            break;
                        }

                    case SocketAddressKind.Unix when addr.Unix is { } unix:
                        server.ListenUnix(unix.Path);
                        break;
                    default:
                        throw new BlockException(Errno.EINVAL, $"Socket address type '{addr.Type.ToWire()}' is not supported by the NBD server");
                }
            }
            catch (IOException ex)
            {
                await server.DisposeAsync().ConfigureAwait(false);
                // The listener's own words ("Failed to bind socket to ..."), with the errno kept for the fronts.
                throw ex as BlockException ?? new BlockException(BlockException.ErrnoOf(ex), ex.Message, ex);
            }
            catch
            {
                await server.DisposeAsync().ConfigureAwait(false);
                throw;
            }

            _server = server;
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>
    /// Starts the server on a listening socket the caller was given as a descriptor (QMP's getfd and an 'fd'
    /// SocketAddress); the server owns the descriptor from here on, and closes it whatever happens.
    /// </summary>
    public async ValueTask StartOnDescriptorAsync(int fd, uint maxConnections = 0)
    {
        var handle = new System.Net.Sockets.SafeSocketHandle(fd, ownsHandle: true);
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_server != null)
            {
                handle.Dispose();
                throw new BlockException(Errno.EBUSY, "NBD server already running");
            }

            var server = new NbdServer(Limits(maxConnections));
            try
            {
                TcpEndPoint = server.ListenOn(handle);
            }
            catch (Exception ex) when (ex is IOException or System.Net.Sockets.SocketException)
            {
                await server.DisposeAsync().ConfigureAwait(false);
                throw new BlockException(Errno.EINVAL, ex.Message, ex);
            }

            _server = server;
        }
        finally
        {
            _lock.Release();
        }
    }

    private static NbdServerLimits Limits(uint maxConnections) =>
        NbdServerLimits.Default with { MaxConnections = (int)Math.Min(maxConnections, int.MaxValue) };

    /// <summary>
    /// nbd-server-add: exports a device (the seed's form) or, as newer QEMU also takes it, a node, under
    /// <paramref name="name"/> (the device name when absent). The export is a block export whose id is its name.
    /// </summary>
    public async ValueTask AddExportAsync(string device, bool writable, string? name = null, string? description = null, string? bitmap = null)
    {
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            var server = _server ?? throw new BlockException(Errno.EINVAL, "NBD server not running");
            BlockBackend backend;
            bool borrowed = false;
            BlockNode? node = null;
            if (_graph.FindDevice(device) is { } dev)
            {
                backend = dev;
                if (backend.Root == null)
                    throw new BlockException(Errno.ENOMEDIUM, $"Device '{device}' has no medium");
                // An export over a locked image would leave its clients hanging until block_passwd.
                if (backend.Root.NodeNeedingKey() is { } locked)
                    throw Encrypted(device, locked);
                // QEMU 2.1 exported a device once; under names of their own (newer QEMU) it may be exported again.
                if (name == null)
                {
                    foreach (var e in server.Exports)
                    {
                        if (ReferenceEquals(e.Device, backend))
                            throw new BlockException(Errno.EBUSY, $"NBD server already exporting device '{device}'");
                    }
                }
            }
            else if (_graph.FindNode(device) is { } named)
            {
                // Newer QEMU's nbd-server-add takes a node name too; that is how a fleecing target (the
                // anonymous target of a backup, named in query-named-block-nodes) gets exported.
                if (named.NodeNeedingKey() is { } locked)
                    throw Encrypted(device, locked);
                node = named;
                backend = null!;
                borrowed = true;
            }
            else
            {
                throw new BlockException(Errno.ENODEV, $"Device '{device}' not found");
            }

            string exportName = name ?? device;
            if (name != null)
                CheckId(exportName);
            CheckNew(server, exportName, exportName, description);
            if (borrowed)
                backend = _graph.CreateAnonymousDevice(node!, device);

            // nbd-server-add exports a read-only device read-only whatever 'writable' says (2.1 and 7.2 alike).
            bool rw = writable && !backend.Root!.ReadOnly;
            List<NamedDirtyBitmap> bitmaps;
            try
            {
                bitmaps = bitmap == null ? [] : ExportBitmaps.Resolve(_graph, backend.Root!, [new BlockDirtyBitmapOrStr { Local = bitmap }], rw);
            }
            catch (BlockException) when (borrowed)
            {
                await backend.ReleaseRootAsync().ConfigureAwait(false);
                throw;
            }

            Publish(server, new NbdExport(exportName, backend, rw, description) { Bitmaps = bitmaps }, backend, borrowed);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>
    /// block-export-add of type nbd (and the daemon's --export): a node, or a device's root, under the export
    /// name given (the node name when absent), with QEMU 7.2's checks in its order and words.
    /// </summary>
    public async ValueTask AddBlockExportAsync(BlockExportOptions options)
    {
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            CheckId(options.Id);
            if (FindEntry(options.Id) != null)
                throw new BlockException(Errno.EEXIST, $"Block export id '{options.Id}' is already in use");
            var device = _graph.FindNode(options.NodeName) == null ? _graph.FindDevice(options.NodeName) : null;
            var node = _graph.FindNode(options.NodeName) ?? device?.Root
                ?? throw new BlockException(Errno.ENOENT, $"Cannot find device='' nor node-name='{options.NodeName}'");
            bool writable = options.Writable ?? false;
            if (writable && node.ReadOnly)
                throw new BlockException(Errno.EROFS, "Cannot export read-only node as writable");
            var server = _server ?? throw new BlockException(Errno.EINVAL, "NBD server not running");
            string exportName = options.Nbd?.Name ?? options.NodeName;
            string? description = options.Nbd?.Description;
            CheckNew(server, options.Id, exportName, description);
            if (node.NodeNeedingKey() is { } locked)
                throw Encrypted(options.NodeName, locked);
            var bitmaps = options.Nbd?.Bitmaps is { } names ? ExportBitmaps.Resolve(_graph, node, names, writable) : [];

            // A device named here is exported through itself; a bare node through a device of its own that
            // lets go of the node when the export ends.
            bool borrowed = device == null;
            var backend = device ?? _graph.CreateAnonymousDevice(node, options.NodeName);
            var export = new NbdExport(exportName, backend, writable, description)
            {
                Id = options.Id,
                Writethrough = options.Writethrough ?? false,
                Bitmaps = bitmaps,
                AllocationDepth = options.Nbd?.AllocationDepth ?? false,
            };
            Publish(server, export, backend, borrowed);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>QEMU's rule for ids: a letter, then letters, digits, '-', '.' and '_'.</summary>
    private static void CheckId(string id)
    {
        bool ok = id.Length > 0 && char.IsAsciiLetter(id[0]);
        for (int i = 1; ok && i < id.Length; i++)
            ok = char.IsAsciiLetterOrDigit(id[i]) || id[i] is '-' or '.' or '_';
        if (!ok)
            throw new BlockException(Errno.EINVAL, "Invalid block export id");
    }

    private void CheckNew(NbdServer server, string id, string exportName, string? description)
    {
        if (FindEntry(id) != null)
            throw new BlockException(Errno.EEXIST, $"Block export id '{id}' is already in use");
        // The protocol carries names and descriptions of at most 4096 bytes.
        if (System.Text.Encoding.UTF8.GetByteCount(exportName) > Protocol.NbdConstants.MaxStringLength)
            throw new BlockException(Errno.EINVAL, $"export name '{exportName}' too long");
        if (description != null && System.Text.Encoding.UTF8.GetByteCount(description) > Protocol.NbdConstants.MaxStringLength)
            throw new BlockException(Errno.EINVAL, $"description '{description}' too long");
        if (server.FindExport(exportName) != null)
            throw new BlockException(Errno.EEXIST, $"NBD server already has export named '{exportName}'");
    }

    private void Publish(NbdServer server, NbdExport export, BlockBackend backend, bool borrowed)
    {
        if (!server.TryAddExport(export))
            throw new BlockException(Errno.EEXIST, $"NBD server already has export named '{export.Name}'");
        var entry = new ExportEntry(export, backend, borrowed, backend.Root?.NodeName ?? "", server);
        // As in QEMU 2.1 an export follows the medium rather than holding it: eject and change end it first.
        entry.Blocker = backend.AddBlocker("block device is in use by an NBD export", () => new ValueTask(EndAsync(entry)));
        // As in QEMU, an export ends with its medium: blockdev-del of the device drops it and its clients.
        entry.MediumHandler = dev => _ = EndAsync(entry);
        backend.MediumRemoved += entry.MediumHandler;
        lock (_entries)
            _entries.Add(entry);
        // Held until the export is gone, as QEMU holds them: nothing may clear or remove them under a reader.
        ExportBitmaps.Hold(export.Bitmaps, busy: true);
    }

    /// <summary>query-block-exports: every export, the newest first, as QEMU lists them.</summary>
    public IReadOnlyList<BlockExportInfo> QueryExports()
    {
        var list = new List<BlockExportInfo>();
        lock (_entries)
        {
            for (int i = _entries.Count - 1; i >= 0; i--)
            {
                var e = _entries[i];
                list.Add(new BlockExportInfo { Id = e.Export.Id, Type = BlockExportType.Nbd, NodeName = e.NodeName, ShuttingDown = e.ShuttingDown });
            }
        }

        return list;
    }

    /// <summary>
    /// block-export-del and nbd-server-remove. Safe mode refuses while a client is attached; hard mode ends the
    /// clients. An export nobody uses is gone (and BLOCK_EXPORT_DELETED sent) before this returns; one with
    /// clients goes once they have left, after the reply, as in QEMU.
    /// </summary>
    public async ValueTask RemoveExportAsync(string id, BlockExportRemoveMode mode)
    {
        Task gone;
        bool hadUsers;
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            var entry = FindEntry(id) ?? throw new BlockException(Errno.ENOENT, $"Export '{id}' is not found");
            if (entry.ShuttingDown)
                throw new BlockException(Errno.EBUSY, $"Export '{id}' is already shutting down");
            hadUsers = entry.Server.UserCount(entry.Export) > 0;
            if (mode == BlockExportRemoveMode.Safe && hadUsers)
                throw new BlockException(Errno.EBUSY, $"export '{id}' still in use");
            gone = EndAsync(entry);
        }
        finally
        {
            _lock.Release();
        }

        if (!hadUsers)
            await gone.ConfigureAwait(false);
    }

    private ExportEntry? FindEntry(string id)
    {
        lock (_entries)
            return _entries.Find(e => e.Export.Id == id);
    }

    /// <summary>Takes an export away: no new clients, the attached ones ended, then it is gone.</summary>
    private async Task EndAsync(ExportEntry entry)
    {
        lock (_entries)
        {
            if (entry.Finished)
                return;
            entry.ShuttingDown = true;
        }

        entry.Server.Unpublish(entry.Export);
        await entry.Server.DisconnectAsync(entry.Export).ConfigureAwait(false);
        await FinishAsync(entry).ConfigureAwait(false);
    }

    /// <summary>Forgets an export whose clients are gone and tells the QMP clients; only the first call does anything.</summary>
    private async ValueTask FinishAsync(ExportEntry entry)
    {
        lock (_entries)
        {
            if (entry.Finished)
                return;
            entry.Finished = true;
            _entries.Remove(entry);
        }

        entry.Server.Unpublish(entry.Export);
        ExportBitmaps.Hold(entry.Export.Bitmaps, busy: false);
        entry.Blocker?.Dispose();
        if (entry.MediumHandler != null)
            entry.Backend.MediumRemoved -= entry.MediumHandler;
        try
        {
            // Only now, with every connection gone, may the node be deleted again.
            if (entry.Borrowed)
                await entry.Backend.ReleaseRootAsync().ConfigureAwait(false);
        }
        finally
        {
            _graph.Events.Raise(new BlockExportDeletedEvent { Id = entry.Export.Id });
        }
    }

    /// <summary>QEMU's words for an export refused because its image waits for a key: "'NAME' (FILENAME) is encrypted".</summary>
    private static EncryptionKeyRequiredException Encrypted(string name, BlockNode locked) =>
        new(locked, $"'{name}' ({locked.Filename}) is encrypted");

    /// <summary>
    /// nbd-server-stop: closes the listener and every connection, then drops every export, the oldest first,
    /// each with its BLOCK_EXPORT_DELETED before this returns.
    /// </summary>
    public async ValueTask StopAsync()
    {
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            var server = _server;
            _server = null;
            TcpEndPoint = null;
            ExportEntry[] entries;
            lock (_entries)
            {
                entries = [.. _entries];
                foreach (var e in entries)
                    e.ShuttingDown = true;
            }

            if (server != null)
                await server.DisposeAsync().ConfigureAwait(false);
            foreach (var e in entries)
                await FinishAsync(e).ConfigureAwait(false);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>One block export and what it took: its device (borrowed for a bare node), its eject blocker.</summary>
    private sealed class ExportEntry(NbdExport export, BlockBackend backend, bool borrowed, string nodeName, NbdServer server)
    {
        public NbdExport Export { get; } = export;
        public BlockBackend Backend { get; } = backend;
        public bool Borrowed { get; } = borrowed;
        public string NodeName { get; } = nodeName;
        public NbdServer Server { get; } = server;
        public DeviceBlocker? Blocker { get; set; }
        public Action<BlockBackend>? MediumHandler { get; set; }

        // Both under the service's entry list lock.
        public bool ShuttingDown { get; set; }
        public bool Finished { get; set; }
    }

    public ValueTask DisposeAsync() => StopAsync();
}
