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
    // Each live connection with the task that serves it (null for the moment between its start and its task's).
    private readonly Dictionary<NbdSession, Task?> _sessions = [];
    private readonly List<Task> _tasks = [];
    private readonly CancellationTokenSource _stopping = new();

    // With max-connections, one slot per accepted client: the accept loops wait for a free slot, so a client
    // past the limit waits in the listen backlog until another leaves, as QEMU stops accepting then.
    private readonly SemaphoreSlim? _slots;

    public NbdServer(NbdServerLimits? limits = null)
    {
        Limits = limits ?? NbdServerLimits.Default;
        if (Limits.MaxConnections > 0)
            _slots = new SemaphoreSlim(Limits.MaxConnections, Limits.MaxConnections);
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

    /// <summary>Whether this very export is the one its name finds (a newer export may have taken the name).</summary>
    public bool IsPublished(NbdExport export)
    {
        lock (_exports)
            return _exports.TryGetValue(export.Name, out var current) && ReferenceEquals(current, export);
    }

    /// <summary>Takes this very export out of the name table, so no new client reaches it; false when it was not there.</summary>
    public bool Unpublish(NbdExport export)
    {
        lock (_exports)
        {
            if (!IsPublished(export))
                return false;
            _exports.Remove(export.Name);
            return true;
        }
    }

    /// <summary>How many connections are attached to the export (past negotiation).</summary>
    public int UserCount(NbdExport export)
    {
        int n = 0;
        lock (_sessions)
        {
            foreach (var s in _sessions.Keys)
            {
                if (ReferenceEquals(s.Export, export))
                    n++;
            }
        }

        return n;
    }

    /// <summary>Ends the connections attached to the export and waits until each has finished its requests and closed.</summary>
    public async Task DisconnectAsync(NbdExport export)
    {
        List<(NbdSession Session, Task? Task)> users = [];
        lock (_sessions)
        {
            foreach (var (s, t) in _sessions)
            {
                if (ReferenceEquals(s.Export, export))
                    users.Add((s, t));
            }
        }

        foreach (var (s, _) in users)
            await s.CloseAsync().ConfigureAwait(false);
        foreach (var (_, t) in users)
        {
            if (t != null)
                await t.ConfigureAwait(false);
        }
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
        if (_slots is { } slots)
            listener.Start((stream, peer) => ServeAsync(stream, peer, slots), slots.WaitAsync, () => slots.Release());
        else
            listener.Start((stream, peer) => ServeAsync(stream, peer));
        lock (_tasks)
            _tasks.Add(listener.Accepting);
        return listener;
    }

    /// <summary>Serves one client over a duplex stream until it disconnects or the server stops; disposes the stream.</summary>
    public Task ServeAsync(Stream stream, string peer) => ServeAsync(stream, peer, null);

    /// <summary>Serves one client; <paramref name="slot"/> is released when it leaves (the client took a max-connections slot).</summary>
    private Task ServeAsync(Stream stream, string peer, SemaphoreSlim? slot)
    {
        var session = new NbdSession(this, stream, peer);
        lock (_sessions)
            _sessions.Add(session, null);
        var task = RunAsync(session, slot);
        lock (_sessions)
        {
            if (_sessions.ContainsKey(session))
                _sessions[session] = task;
        }

        lock (_tasks)
            _tasks.Add(task);
        return task;
    }

    /// <summary>Connections that ended on an error other than a protocol violation or a lost socket: bugs, which fuzzing looks for.</summary>
    public int FaultedSessions => Volatile.Read(ref _faulted);

    /// <summary>The last such error, for the test that finds it.</summary>
    public Exception? LastFault { get; private set; }

    private int _faulted;

    private async Task RunAsync(NbdSession session, SemaphoreSlim? slot)
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
            slot?.Release();
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
            sessions = [.. _sessions.Keys];
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
