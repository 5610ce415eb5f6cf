using System.Net;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Net;
using SharpBlock.Schema;

namespace SharpBlock.Nbd.Server;

/// <summary>
/// The daemon's one NBD server and its exports, whichever front drives it: QMP's nbd-server-start/add/stop
/// or the daemon's --nbd-server/--export options. Failures are BlockExceptions in QEMU's wording, so
/// scripts written for QEMU read them unchanged; the errno tells a front what kind of failure it is
/// (ENODEV: no such device; <see cref="EncryptionKeyRequiredException"/>: the medium waits for its key).
/// </summary>
public sealed class NbdService : IAsyncDisposable
{
    private readonly BlockGraph _graph;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private NbdServer? _server;

    // Each export is told when its device's medium goes (eject, change) and ends first.
    private readonly Dictionary<string, DeviceBlocker> _blockers = new(StringComparer.Ordinal);

    // Devices made only to export a bare node; they let go of it when the server stops.
    private readonly List<BlockBackend> _borrowed = [];

    public NbdService(BlockGraph graph)
    {
        _graph = graph;
    }

    public bool Running => _server != null;

    /// <summary>The running server, for callers that want its state (tests, query commands).</summary>
    public NbdServer? Server => _server;

    /// <summary>The bound TCP endpoint when listening on inet (useful with port 0), else null.</summary>
    public IPEndPoint? TcpEndPoint { get; private set; }

    public async ValueTask StartAsync(SharpBlock.Schema.SocketAddress addr)
    {
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_server != null)
                throw new BlockException(Errno.EBUSY, "NBD server already running");
            var server = new NbdServer();
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
    public async ValueTask StartOnDescriptorAsync(int fd)
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

            var server = new NbdServer();
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

    /// <summary>
    /// Exports a device (nbd-server-add) or, for --export node-name=, a node through a device of its own
    /// that is not listed among the user's devices. The export name defaults to the device's name.
    /// </summary>
    public async ValueTask AddExportAsync(string? device, string? nodeName, bool writable, string? name = null, string? description = null)
    {
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            var server = _server ?? throw new BlockException(Errno.EINVAL, "NBD server not running");
            BlockBackend backend;
            if (device != null && _graph.FindDevice(device) == null && _graph.FindNode(device) is { } named)
            {
                // Newer QEMU's nbd-server-add takes a node name too; that is how a fleecing target (the
                // anonymous target of a backup, named in query-named-block-nodes) gets exported.
                if (named.NodeNeedingKey() is { } locked)
                    throw Encrypted(device, locked);
                backend = Borrow(named, device);
            }
            else if (device != null)
            {
                backend = _graph.FindDevice(device) ?? throw new BlockException(Errno.ENODEV, $"Device '{device}' not found");
                if (backend.Root == null)
                    throw new BlockException(Errno.ENOMEDIUM, $"Device '{device}' has no medium");
                // An export over a locked image would leave its clients hanging until block_passwd.
                if (backend.Root?.NodeNeedingKey() is { } locked)
                    throw Encrypted(device, locked);
                foreach (var e in server.Exports)
                {
                    if (ReferenceEquals(e.Device, backend))
                        throw new BlockException(Errno.EBUSY, $"NBD server already exporting device '{device}'");
                }
            }
            else if (nodeName != null)
            {
                var node = _graph.FindNode(nodeName) ?? _graph.FindDevice(nodeName)?.Root
                    ?? throw new BlockException(Errno.ENOENT, $"Cannot find device={nodeName} nor node-name={nodeName}");
                if (node.NodeNeedingKey() is { } locked)
                    throw Encrypted(nodeName, locked);
                if (writable && node.ReadOnly)
                    throw new BlockException(Errno.EROFS, $"Device '{nodeName}' is read only");
                backend = _graph.FindDevice(nodeName) ?? Borrow(node, nodeName);
            }
            else
            {
                throw new BlockException(Errno.EINVAL, "One of 'device' and 'node-name' must be given");
            }

            if (writable && backend.Root!.ReadOnly)
            {
                // QEMU 2.1's nbd-server-add exports a read-only device read-only whatever 'writable' says;
                // the daemon's --export node-name= follows newer QEMU and refuses.
                if (device == null)
                    throw new BlockException(Errno.EROFS, $"Device '{device ?? nodeName}' is read only");
                writable = false;
            }

            string exportName = name ?? device ?? nodeName!;
            var export = new NbdExport(exportName, backend, writable, description);
            if (!server.TryAddExport(export))
            {
                if (_borrowed.Remove(backend))
                    await backend.ReleaseRootAsync().ConfigureAwait(false);
                throw new BlockException(Errno.EEXIST, $"NBD server already has export named '{exportName}'");
            }
            // As in QEMU 2.1 an export follows the medium rather than holding it: eject and change end it first.
            var blocker = backend.AddBlocker("block device is in use by an NBD export", async () =>
            {
                await server.RemoveExportAsync(export).ConfigureAwait(false);
                lock (_blockers)
                    _blockers.Remove(exportName);
            });
            lock (_blockers)
                _blockers[exportName] = blocker;

            // As in QEMU, an export ends with its medium: blockdev-del of the device drops it and its clients.
            backend.MediumRemoved += dev => server.RemoveExportAsync(export).AsTask();
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>QEMU's words for an export refused because its image waits for a key: "'NAME' (FILENAME) is encrypted".</summary>
    private static EncryptionKeyRequiredException Encrypted(string name, BlockNode locked) =>
        new(locked, $"'{name}' ({locked.Filename}) is encrypted");

    private BlockBackend Borrow(BlockNode node, string name)
    {
        var backend = _graph.CreateAnonymousDevice(node, name);
        _borrowed.Add(backend);
        return backend;
    }

    /// <summary>nbd-server-stop: closes the listener and every connection, and drops every export.</summary>
    public async ValueTask StopAsync()
    {
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            var server = _server;
            _server = null;
            TcpEndPoint = null;
            lock (_blockers)
            {
                foreach (var b in _blockers.Values)
                    b.Dispose();
                _blockers.Clear();
            }
            if (server != null)
                await server.DisposeAsync().ConfigureAwait(false);
            // Only now, with every connection gone, may the nodes be deleted again.
            foreach (var b in _borrowed)
                await b.ReleaseRootAsync().ConfigureAwait(false);
            _borrowed.Clear();
        }
        finally
        {
            _lock.Release();
        }
    }

    public ValueTask DisposeAsync() => StopAsync();
}
