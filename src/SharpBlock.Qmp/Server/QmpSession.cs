using System.Buffers;
using System.IO.Pipelines;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using SharpBlock.Qmp.Protocol;
using SharpBlock.Qmp.Schema;
using SharpBlock.Schema;

namespace SharpBlock.Qmp.Server;

/// <summary>
/// One QMP client: greeting, capabilities negotiation, then commands answered one at a time in the order
/// they came. Replies and events leave through one queue and one writer, so a slow client delays only
/// itself; events beyond a backlog limit are dropped for that client rather than blocking the block layer.
/// Replies are never dropped: once a client's unsent replies pass a byte limit its input is not read
/// until they drain, so a client that sends without reading stalls on its own socket instead of growing
/// the daemon's memory.
/// </summary>
public sealed class QmpSession
{
    private const int MaxQueuedEvents = 1024;

    /// <summary>
    /// Unsent reply bytes at which the session stops reading the client. Large enough for the biggest
    /// replies (query-commands, query-block of many devices) to queue a few at a time.
    /// </summary>
    internal const int MaxQueuedReplyBytes = 1 << 20;
    private static readonly byte[] NewLine = "\r\n"u8.ToArray();

    private readonly QmpServer _server;
    private readonly Stream _input;
    private readonly Stream _output;
    private readonly ILogger _log;
    private readonly Channel<(byte[] Data, bool IsEvent)> _outgoing = Channel.CreateUnbounded<(byte[] Data, bool IsEvent)>();
    private readonly Lock _drainLock = new();
    private int _queuedEvents;
    private long _queuedReplyBytes;
    private TaskCompletionSource? _drained;
    private bool _writerGone;
    private Action? _afterReply;

    internal QmpSession(QmpServer server, Stream input, Stream output, string peer, ILogger log)
    {
        _server = server;
        _input = input;
        _output = output;
        Peer = peer;
        _log = log;
    }

    public string Peer { get; }

    // Descriptors kept by getfd, as QEMU keeps them per monitor; closed when the session ends.
    private readonly Dictionary<string, int> _namedFds = new(StringComparer.Ordinal);

    /// <summary>getfd: takes the descriptor the client last sent (SCM_RIGHTS) and keeps it as NAME.</summary>
    internal void KeepReceivedFd(string name)
    {
        int fd = (_input as SharpBlock.Net.FdPassingStream)?.TakeReceivedFd() ?? -1;
        if (fd < 0)
            throw new Protocol.QmpException("No file descriptor supplied via SCM_RIGHTS");
        if (name.Length > 0 && char.IsAsciiDigit(name[0]))
        {
            SharpBlock.Net.FdPassingStream.CloseFd(fd);
            throw new Protocol.QmpException("Parameter 'fdname' expects a name not starting with a digit");
        }

        lock (_namedFds)
        {
            if (_namedFds.Remove(name, out int old))
                SharpBlock.Net.FdPassingStream.CloseFd(old);
            _namedFds[name] = fd;
        }
    }

    /// <summary>Takes a kept descriptor away from the session (the caller owns it now), or -1.</summary>
    internal int TakeNamedFd(string name)
    {
        lock (_namedFds)
            return _namedFds.Remove(name, out int fd) ? fd : -1;
    }

    private void CloseNamedFds()
    {
        lock (_namedFds)
        {
            foreach (int fd in _namedFds.Values)
                SharpBlock.Net.FdPassingStream.CloseFd(fd);
            _namedFds.Clear();
        }
    }

    /// <summary>True once qmp_capabilities succeeded; only then does the session receive events.</summary>
    public bool Negotiated { get; internal set; }

    internal async Task RunAsync(CancellationToken cancellationToken)
    {
        var writer = Task.Run(() => WriteLoopAsync(), CancellationToken.None);
        try
        {
            Enqueue(Greeting());
            await ReadLoopAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException)
        {
            _server.LogLimiter.Log(_log, "connection", l => l.LogDebug("QMP session {Peer} ended: {Message}", Peer, ex.Message));
        }
        finally
        {
            _outgoing.Writer.TryComplete();
            await writer.ConfigureAwait(false);
            CloseNamedFds();
        }
    }

    private async Task ReadLoopAsync(CancellationToken cancellationToken)
    {
        var reader = PipeReader.Create(_input, new StreamPipeReaderOptions(bufferSize: 64 * 1024, leaveOpen: true));
        var scanner = new QmpFrameScanner();
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
                var buffer = result.Buffer;
                while (true)
                {
                    await WaitForRepliesToDrainAsync(cancellationToken).ConfigureAwait(false);
                    var status = scanner.TryReadFrame(ref buffer, out var frame);
                    if (status == QmpFrameStatus.NeedMore)
                        break;
                    if (status == QmpFrameStatus.Frame)
                        await HandleFrameAsync(frame, cancellationToken).ConfigureAwait(false);
                    else
                        RefuseFrame(status == QmpFrameStatus.TooLarge
                            ? $"JSON parse error, message exceeds {QmpFrameScanner.MaxFrameBytes} bytes"
                            : $"JSON parse error, nesting deeper than {QmpFrameScanner.MaxDepth}");
                }

                reader.AdvanceTo(buffer.Start, buffer.End);
                if (result.IsCompleted)
                    return;
            }
        }
        finally
        {
            await reader.CompleteAsync().ConfigureAwait(false);
        }
    }

    private byte[] Greeting()
    {
        var w = new QmpJsonWriter(new ArrayBufferWriter<byte>(256));
        w.WriteStartObject();
        w.WritePropertyName("QMP");
        w.WriteStartObject();
        w.WritePropertyName("version");
        QapiCodec.Write(w, _server.Version);
        w.WritePropertyName("capabilities");
        w.WriteStartArray();
        w.WriteEndArray();
        w.WriteEndObject();
        w.WriteEndObject();
        return w.WrittenMemory.ToArray();
    }

    private async ValueTask HandleFrameAsync(ReadOnlySequence<byte> frame, CancellationToken cancellationToken)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(frame, new JsonDocumentOptions { MaxDepth = QmpFrameScanner.MaxDepth + 1 });
        }
        catch (JsonException ex)
        {
            SendError(null, ErrorClass.GenericError, ParseErrorText(frame, ex));
            return;
        }

        if (QmpInputRules.FindProblem(frame) is { } problem)
        {
            doc.Dispose();
            SendError(null, ErrorClass.GenericError, problem);
            return;
        }

        using (doc)
        {
            var root = doc.RootElement;
            JsonElement? id = null;
            try
            {
                if (root.ValueKind != JsonValueKind.Object)
                    throw new QmpException("QMP input must be a JSON object");
                if (root.TryGetProperty("id", out var idEl))
                    id = idEl;
                string? command = null;
                JsonElement? arguments = null;
                foreach (var p in root.EnumerateObject())
                {
                    switch (p.Name)
                    {
                        case "execute":
                            if (p.Value.ValueKind != JsonValueKind.String)
                                throw new QmpException("QMP input member 'execute' must be a string");
                            command = p.Value.GetString();
                            break;
                        case "arguments":
                            if (p.Value.ValueKind != JsonValueKind.Object)
                                throw new QmpException("QMP input member 'arguments' must be an object");
                            arguments = p.Value;
                            break;
                        case "id":
                            break;
                        default:
                            throw new QmpException($"QMP input member '{p.Name}' is unexpected");
                    }
                }

                if (command == null)
                    throw new QmpException("QMP input lacks member 'execute'");
                var reply = await _server.ExecuteAsync(this, command, arguments, cancellationToken).ConfigureAwait(false);
                SendReturn(id, reply);
            }
#pragma warning disable CA1031 // A failing command must never end the session: the client gets an error reply.
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
#pragma warning restore CA1031
            {
                if (!QmpException.IsExpected(ex))
                {
                    _server.CountInternalError();
                    _server.LogLimiter.Log(_log, "command-failed", l => l.LogError(ex, "Command failed unexpectedly"));
                }
                var error = QmpException.From(ex);
                SendError(id, error.ErrorClass, error.Message);
            }
        }
    }

    /// <summary>A message too large or too deep to parse: the client is told, the operator warned (capped).</summary>
    private void RefuseFrame(string description)
    {
        _server.LogLimiter.Log(_log, "frame-refused", l => l.LogWarning("QMP client {Peer}: {Description}; message refused", Peer, description));
        SendError(null, ErrorClass.GenericError, description);
    }

    /// <summary>QEMU-like text for a message that is not JSON: it names a bad keyword, else says what was expected.</summary>
    private static string ParseErrorText(ReadOnlySequence<byte> frame, JsonException ex)
    {
        string text = System.Text.EncodingExtensions.GetString(System.Text.Encoding.UTF8, frame.Length > 64 ? frame.Slice(0, 64) : frame).Trim();
        if (text.Length > 0 && char.IsAsciiLetter(text[0]))
        {
            int n = 0;
            while (n < text.Length && char.IsAsciiLetterOrDigit(text[n]))
                n++;
            return $"JSON parse error, invalid keyword '{text[..n]}'";
        }

        if (text is "}" or "]")
            return "JSON parse error, expecting value";
        string m = ex.Message;
        int cut = m.IndexOf(" LineNumber", StringComparison.Ordinal);
        return "JSON parse error, " + (cut > 0 ? m[..cut] : m).TrimEnd('.', ' ');
    }

    private void SendReturn(JsonElement? id, Action<QmpJsonWriter>? value)
    {
        var w = new QmpJsonWriter(new ArrayBufferWriter<byte>(256));
        w.WriteStartObject();
        w.WritePropertyName("return");
        if (value != null)
        {
            value(w);
        }
        else
        {
            w.WriteStartObject();
            w.WriteEndObject();
        }

        WriteId(w, id);
        w.WriteEndObject();
        Enqueue(w.WrittenMemory.ToArray());
        Interlocked.Exchange(ref _afterReply, null)?.Invoke();
    }

    /// <summary>Runs an action once the current command's reply is queued (quit uses it so its reply is sent).</summary>
    internal void AfterReply(Action action) => _afterReply = action;

    private void SendError(JsonElement? id, ErrorClass errorClass, string description)
    {
        var w = new QmpJsonWriter(new ArrayBufferWriter<byte>(256));
        w.WriteStartObject();
        w.WritePropertyName("error");
        w.WriteStartObject();
        w.WritePropertyName("class");
        w.WriteStringValue(errorClass.ToWire());
        w.WritePropertyName("desc");
        w.WriteStringValue(description);
        w.WriteEndObject();
        WriteId(w, id);
        w.WriteEndObject();
        Enqueue(w.WrittenMemory.ToArray());
    }

    private static void WriteId(QmpJsonWriter w, JsonElement? id)
    {
        if (id is { } v)
        {
            w.WritePropertyName("id");
            w.WriteRawValue(v);
        }
    }

    /// <summary>Queues an already-serialised event; dropped if this client has fallen far behind.</summary>
    internal void SendEvent(byte[] message)
    {
        if (Interlocked.Increment(ref _queuedEvents) > MaxQueuedEvents)
        {
            Interlocked.Decrement(ref _queuedEvents);
            _server.LogLimiter.Log(_log, "event-dropped", l => l.LogWarning("QMP client {Peer} is not reading; event dropped", Peer));
            return;
        }

        if (!_outgoing.Writer.TryWrite((message, true)))
            Interlocked.Decrement(ref _queuedEvents);
    }

    private void Enqueue(byte[] message)
    {
        Interlocked.Add(ref _queuedReplyBytes, message.Length);
        if (!_outgoing.Writer.TryWrite((message, false)))
            Interlocked.Add(ref _queuedReplyBytes, -message.Length);
    }

    /// <summary>Back pressure on the client: waits while its unsent replies are over the limit.</summary>
    private ValueTask WaitForRepliesToDrainAsync(CancellationToken cancellationToken) =>
        Volatile.Read(ref _queuedReplyBytes) <= MaxQueuedReplyBytes ? default : WaitSlowAsync(cancellationToken);

    private async ValueTask WaitSlowAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            Task drained;
            lock (_drainLock)
            {
                if (_writerGone || _queuedReplyBytes <= MaxQueuedReplyBytes)
                    return;
                _drained ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                drained = _drained.Task;
            }

            await drained.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private void ReplyWritten(int length)
    {
        // Resume reading at half the limit, so a reader that keeps up a little is not woken per reply.
        if (Interlocked.Add(ref _queuedReplyBytes, -length) <= MaxQueuedReplyBytes / 2 && Volatile.Read(ref _drained) != null)
            WakeReader(writerGone: false);
    }

    private void WakeReader(bool writerGone)
    {
        TaskCompletionSource? drained;
        lock (_drainLock)
        {
            _writerGone |= writerGone;
            drained = _drained;
            _drained = null;
        }

        drained?.TrySetResult();
    }

    private async Task WriteLoopAsync()
    {
        try
        {
            await foreach (var (message, isEvent) in _outgoing.Reader.ReadAllAsync().ConfigureAwait(false))
            {
                if (isEvent)
                    Interlocked.Decrement(ref _queuedEvents);
                await _output.WriteAsync(message).ConfigureAwait(false);
                await _output.WriteAsync(NewLine).ConfigureAwait(false);
                if (_outgoing.Reader.Count == 0)
                    await _output.FlushAsync().ConfigureAwait(false);
                if (!isEvent)
                    ReplyWritten(message.Length);
            }
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
            _server.LogLimiter.Log(_log, "connection", l => l.LogDebug("QMP client {Peer} stopped reading: {Message}", Peer, ex.Message));
        }
        catch (Exception ex)
        {
            _log.LogError(ex, "QMP writer for {Peer} failed", Peer);
            throw;
        }
        finally
        {
            // Nothing more reaches this client: later messages are refused instead of queued without end,
            // and a reader waiting for replies to drain goes on (to see the end of its input).
            _outgoing.Writer.TryComplete();
            WakeReader(writerGone: true);
        }
    }
}
