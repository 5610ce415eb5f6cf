using System.Net;
using SharpBlock.Net;

namespace SharpBlock.Nbd.Server;

/// <summary>
/// The NBD server of a daemon: the exports, the listening sockets and the live connections. Transports only
/// hand it a stream per client (TCP, Unix socket, or an in-memory pipe in tests); one broken connection
/// never affects the others.
/// </summary>
public sealed class NbdServer : IAsyncDisposable
{
    private readonly Dictionary<string, NbdExport> _exports = new(StringComparer.Ordinal);
    private readonly List<SocketListener> _listeners = [];
    private readonly HashSet<NbdSession> _sessions = [];
    private readonly List<Task> _tasks = [];
    private readonly CancellationTokenSource _stopping = new();

    public NbdServer(NbdServerLimits? limits = null)
    {
        Limits = limits ?? NbdServerLimits.Default;
    }

    public NbdServerLimits Limits { get; }

    /// <summary>Where the server listens: "unix:PATH" or the bound "HOST:PORT".</summary>
    public IReadOnlyList<string> Addresses
    {
        get
        {
            lock (_listeners)
            {
                var r = new List<string>();
                foreach (var l in _listeners)
                    r.Add(l.Display);
                return r;
            }
        }
    }

    /// <summary>Number of connected clients, in negotiation or transmission.</summary>
    public int ConnectionCount
    {
        get
        {
            lock (_sessions)
                return _sessions.Count;
        }
    }

    public IReadOnlyList<NbdExport> Exports
    {
        get
        {
            lock (_exports)
                return [.. _exports.Values];
        }
    }

    public NbdExport? FindExport(string name)
    {
        lock (_exports)
            return _exports.GetValueOrDefault(name);
    }

    /// <summary>Adds an export; false when the name is taken.</summary>
    public bool TryAddExport(NbdExport export)
    {
        lock (_exports)
            return _exports.TryAdd(export.Name, export);
    }

    /// <summary>Removes an export and ends the connections that use it.</summary>
    public async ValueTask<bool> RemoveExportAsync(string name)
    {
        NbdExport? removed;
        lock (_exports)
        {
            if (!_exports.Remove(name, out removed))
                return false;
        }

        await CloseUsersAsync(removed).ConfigureAwait(false);
        return true;
    }

    /// <summary>Removes this very export, if it is still there (a newer export may have taken its name).</summary>
    public async ValueTask<bool> RemoveExportAsync(NbdExport export)
    {
        lock (_exports)
        {
            if (!_exports.TryGetValue(export.Name, out var current) || !ReferenceEquals(current, export))
                return false;
            _exports.Remove(export.Name);
        }

        await CloseUsersAsync(export).ConfigureAwait(false);
        return true;
    }

    private async ValueTask CloseUsersAsync(NbdExport removed)
    {
        List<NbdSession> users = [];
        lock (_sessions)
        {
            foreach (var s in _sessions)
            {
                if (ReferenceEquals(s.Export, removed))
                    users.Add(s);
            }
        }

        foreach (var s in users)
            await s.CloseAsync().ConfigureAwait(false);
    }

    /// <summary>Listens on TCP; returns the bound endpoint (useful with port 0).</summary>
    public IPEndPoint ListenTcp(IPEndPoint endpoint) => Listen(SocketListener.ListenTcp(endpoint)).TcpEndPoint!;

    /// <summary>Listens on the first of the addresses and ports that binds; returns the bound endpoint.</summary>
    public IPEndPoint ListenTcp(IReadOnlyList<IPAddress> addresses, int firstPort, int lastPort) =>
        Listen(SocketListener.ListenTcp(addresses, firstPort, lastPort)).TcpEndPoint!;

    /// <summary>Serves a socket someone else bound (a passed descriptor); returns its TCP endpoint, if it is TCP.</summary>
    public IPEndPoint? ListenOn(System.Net.Sockets.SafeSocketHandle handle) => Listen(SocketListener.Adopt(handle)).TcpEndPoint;

    /// <summary>Listens on a Unix socket (mode 0600), replacing a stale socket file.</summary>
    public void ListenUnix(string path) => Listen(SocketListener.ListenUnix(path));

    private SocketListener Listen(SocketListener listener)
    {
        lock (_listeners)
            _listeners.Add(listener);
        listener.Start((stream, peer) => ServeAsync(stream, peer));
        lock (_tasks)
            _tasks.Add(listener.Accepting);
        return listener;
    }

    /// <summary>Serves one client over a duplex stream until it disconnects or the server stops; disposes the stream.</summary>
    public Task ServeAsync(Stream stream, string peer)
    {
        var session = new NbdSession(this, stream, peer);
        lock (_sessions)
            _sessions.Add(session);
        var task = RunAsync(session);
        lock (_tasks)
            _tasks.Add(task);
        return task;
    }

    /// <summary>Connections that ended on an error other than a protocol violation or a lost socket: bugs, which fuzzing looks for.</summary>
    public int FaultedSessions => Volatile.Read(ref _faulted);

    /// <summary>The last such error, for the test that finds it.</summary>
    public Exception? LastFault { get; private set; }

    private int _faulted;

    private async Task RunAsync(NbdSession session)
    {
        try
        {
            await session.RunAsync(_stopping.Token).ConfigureAwait(false);
        }
#pragma warning disable CA1031 // One connection's failure, whatever it is, must not reach the others or the daemon.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            LastFault = ex;
            Interlocked.Increment(ref _faulted);
        }
        finally
        {
            lock (_sessions)
                _sessions.Remove(session);
        }
    }

    /// <summary>Stops listening, closes every connection after its requests in flight finish, drops the exports.</summary>
    public async ValueTask DisposeAsync()
    {
        lock (_listeners)
        {
            foreach (var l in _listeners)
                l.Dispose();
            _listeners.Clear();
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        NbdSession[] sessions;
        lock (_sessions)
            sessions = [.. _sessions];
        foreach (var s in sessions)
            await s.CloseAsync().ConfigureAwait(false);
        Task[] tasks;
        lock (_tasks)
            tasks = [.. _tasks];
        await Task.WhenAny(Task.WhenAll(tasks), Task.Delay(5000)).ConfigureAwait(false);
        lock (_exports)
            _exports.Clear();
        _stopping.Dispose();
    }
}
