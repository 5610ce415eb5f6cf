using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using SharpBlock.Graph;
using SharpBlock.Nbd.Client;
using SharpBlock.Nbd.Server;
using SharpBlock.Net;
using SharpBlock.Qmp.Protocol;
using SharpBlock.Qmp.Schema;
using SharpBlock.Schema;

namespace SharpBlock.Qmp.Server;

/// <summary>
/// The QMP service of a daemon: the command table, the connected sessions and the event fan-out. Transports
/// (Unix socket, TCP, stdio, in-memory streams in tests) only hand it a pair of streams per client.
/// </summary>
public sealed class QmpServer : IAsyncDisposable
{
    private readonly Dictionary<string, QmpCommand> _commands = new(StringComparer.Ordinal);
    private readonly List<QmpSession> _sessions = [];
    private readonly List<Task> _sessionTasks = [];
    private readonly List<SocketListener> _listeners = [];
    private readonly CancellationTokenSource _stopping = new();
    private readonly TaskCompletionSource _quit = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ILoggerFactory _loggers;
    private readonly ILogger _log;
    private readonly QmpEventThrottle _throttle;

    public QmpServer(BlockGraph graph, ILoggerFactory? loggers = null, TimeProvider? clock = null)
    {
        Graph = graph;
        _throttle = new QmpEventThrottle(SendToSessions, clock);
        _loggers = loggers ?? NullLoggerFactory.Instance;
        _log = _loggers.CreateLogger("SharpBlock.Qmp");
        graph.Events.Raised += Broadcast;
        // The nbd client driver lives outside the core library; a graph served over QMP can use it.
        NbdClientDriver.Register(graph.Drivers);
        Nbd = new NbdService(graph);
        Commands.StandardCommands.RegisterAll(this);
    }

    public BlockGraph Graph { get; }

    /// <summary>Which QEMU version the greeting and query-version claim; set before clients connect.</summary>
    public QmpVersion ReportedVersion { get; init; } = QmpVersion.Seed;

    /// <summary>What the greeting and query-version report: the QEMU numbers of <see cref="ReportedVersion"/> and our package.</summary>
    public VersionInfo Version => new()
    {
        Qemu = ReportedVersion == QmpVersion.Qemu72
            ? new VersionTriple { Major = 7, Minor = 2, Micro = 0 }
            : new VersionTriple { Major = 2, Minor = 1, Micro = 0 },
        Package = Package,
    };

    private static readonly string Package = "sharpblock " + (typeof(QmpServer).Assembly.GetName().Version?.ToString(3) ?? "0.0.0");

    /// <summary>The built-in NBD server (nbd-server-start/add/stop).</summary>
    public NbdService Nbd { get; }

    /// <summary>Completes when a client sent 'quit'.</summary>
    public Task QuitRequested => _quit.Task;

    public CancellationToken Stopping => _stopping.Token;

    public ILoggerFactory Loggers => _loggers;

    /// <summary>Shared by every session, so many clients flooding together are capped together.</summary>
    internal LogRateLimiter LogLimiter { get; } = new();

    private int _internalErrors;

    /// <summary>
    /// Commands that failed with something other than a protocol, argument or block-layer error: bugs, answered
    /// with a generic error and logged. The QMP fuzz test holds this at zero, as the NBD one does FaultedSessions.
    /// </summary>
    public int InternalErrors => Volatile.Read(ref _internalErrors);

    internal void CountInternalError() => Interlocked.Increment(ref _internalErrors);

    /// <summary>Adds a command; only registered commands exist for clients (query-commands lists exactly these).</summary>
    public void Register(QmpCommand command) => _commands[command.Name] = command;

    public IEnumerable<string> CommandNames => _commands.Keys;

    internal void RequestQuit() => _quit.TrySetResult();

    internal async ValueTask<Action<QmpJsonWriter>?> ExecuteAsync(QmpSession session, string name, JsonElement? arguments, CancellationToken cancellationToken)
    {
        if (!session.Negotiated)
        {
            if (name != "qmp_capabilities")
                throw new QmpException(ErrorClass.CommandNotFound, "Expecting capabilities negotiation with 'qmp_capabilities'");
        }
        else if (name == "qmp_capabilities")
        {
            throw new QmpException(ErrorClass.CommandNotFound, "Capabilities negotiation is already complete, command ignored");
        }

        if (!_commands.TryGetValue(name, out var command))
            throw new QmpException(ErrorClass.CommandNotFound, $"The command {name} has not been found");
        return await command.Invoke(arguments, new QmpCallContext(this, session, cancellationToken)).ConfigureAwait(false);
    }

    private void Broadcast(IQapiEvent e)
    {
        var w = new QmpJsonWriter(new ArrayBufferWriter<byte>(256));
        long us = (DateTimeOffset.UtcNow.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / 10;
        w.WriteStartObject();
        w.WritePropertyName("timestamp");
        w.WriteStartObject();
        w.WritePropertyName("seconds");
        w.WriteNumberValue(us / 1_000_000);
        w.WritePropertyName("microseconds");
        w.WriteNumberValue(us % 1_000_000);
        w.WriteEndObject();
        w.WritePropertyName("event");
        w.WriteStringValue(e.EventName);
        w.WritePropertyName("data");
        QapiCodec.WriteEventData(w, e);
        w.WriteEndObject();
        _throttle.Offer(e.EventName, w.WrittenMemory.ToArray());
    }

    private void SendToSessions(byte[] message)
    {
        lock (_sessions)
        {
            foreach (var s in _sessions)
            {
                if (s.Negotiated)
                    s.SendEvent(message);
            }
        }
    }

    /// <summary>Serves one client over a pair of streams until it disconnects or the server stops.</summary>
    public Task ServeAsync(Stream input, Stream output, string peer)
    {
        var session = new QmpSession(this, input, output, peer, _loggers.CreateLogger("SharpBlock.Qmp.Session"));
        lock (_sessions)
            _sessions.Add(session);
        var task = RunSessionAsync(session);
        lock (_sessionTasks)
            _sessionTasks.Add(task);
        return task;
    }

    private async Task RunSessionAsync(QmpSession session)
    {
        LogLimiter.Log(_log, "connection", l => l.LogDebug("QMP client {Peer} connected", session.Peer));
        try
        {
            await session.RunAsync(_stopping.Token).ConfigureAwait(false);
        }
        finally
        {
            lock (_sessions)
                _sessions.Remove(session);
            LogLimiter.Log(_log, "connection", l => l.LogDebug("QMP client {Peer} disconnected", session.Peer));
        }
    }

    /// <summary>Listens on a Unix socket; the socket file is created mode 0600 so only its owner can connect.</summary>
    public void ListenUnix(string path) => Listen(SocketListener.ListenUnix(path));

    /// <summary>Listens on TCP; returns the bound endpoint (useful with port 0).</summary>
    public IPEndPoint ListenTcp(IPEndPoint endpoint) => Listen(SocketListener.ListenTcp(endpoint)).TcpEndPoint!;

    private SocketListener Listen(SocketListener listener)
    {
        lock (_listeners)
            _listeners.Add(listener);
        listener.Start((stream, peer) => _ = ServeAndCloseAsync(stream, peer));
        return listener;
    }

    private async Task ServeAndCloseAsync(NetworkStream stream, string peer)
    {
        await using (stream.ConfigureAwait(false))
        {
            // A Unix client may pass descriptors along with its commands (getfd), so its bytes are read with
            // recvmsg; TCP has no such thing.
            if (stream.Socket.AddressFamily == System.Net.Sockets.AddressFamily.Unix)
            {
                await using var input = new FdPassingStream(stream.Socket);
                await ServeAsync(input, stream, peer).ConfigureAwait(false);
            }
            else
            {
                await ServeAsync(stream, stream, peer).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Stops listening, ends every session (after their queued replies are written).</summary>
    public async ValueTask DisposeAsync()
    {
        lock (_listeners)
        {
            foreach (var l in _listeners)
                l.Dispose();
            _listeners.Clear();
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        await Nbd.DisposeAsync().ConfigureAwait(false);
        Task[] tasks;
        lock (_sessionTasks)
            tasks = [.. _sessionTasks];
        await Task.WhenAny(Task.WhenAll(tasks), Task.Delay(2000)).ConfigureAwait(false);
        Graph.Events.Raised -= Broadcast;
        _throttle.Dispose();
        _stopping.Dispose();
    }
}
