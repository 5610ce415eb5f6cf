using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace SharpBlock.Testing;

/// <summary>
/// A plain QMP client over a real socket, as a management tool would be: it sends text and reads the
/// server's lines. Events that arrive while waiting for a reply are kept for <see cref="WaitEventAsync"/>.
/// </summary>
public sealed class QmpTestClient : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly StreamReader _reader;
    private readonly List<JsonElement> _events = [];

    private QmpTestClient(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _reader = new StreamReader(_stream, Encoding.UTF8);
    }

    public JsonElement Greeting { get; private set; }

    /// <summary>The connected socket, for tests that send what a stream cannot (descriptors with SCM_RIGHTS).</summary>
    public Socket Socket => _socket;

    public static async Task<QmpTestClient> ConnectUnixAsync(string path, bool negotiate = true)
    {
        var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await s.ConnectAsync(new UnixDomainSocketEndPoint(path));
        return await StartAsync(s, negotiate);
    }

    public static async Task<QmpTestClient> ConnectTcpAsync(System.Net.IPEndPoint ep, bool negotiate = true)
    {
        var s = new Socket(ep.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        await s.ConnectAsync(ep);
        return await StartAsync(s, negotiate);
    }

    private static async Task<QmpTestClient> StartAsync(Socket s, bool negotiate)
    {
        var c = new QmpTestClient(s);
        c.Greeting = await c.ReadMessageAsync();
        if (negotiate)
        {
            var r = await c.ExecuteAsync("qmp_capabilities");
            if (!r.TryGetProperty("return", out _))
                throw new InvalidOperationException("negotiation failed: " + r);
        }

        return c;
    }

    public async Task SendRawAsync(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        await _stream.WriteAsync(bytes);
        await _stream.FlushAsync();
    }

    public async Task SendRawAsync(byte[] bytes)
    {
        await _stream.WriteAsync(bytes);
        await _stream.FlushAsync();
    }

    /// <summary>Reads the next line the server sent, whatever it is.</summary>
    public async Task<JsonElement> ReadMessageAsync(int timeoutMs = 30000)
    {
        using var cts = new CancellationTokenSource(timeoutMs);
        string? line = await _reader.ReadLineAsync(cts.Token);
        if (line == null)
            throw new EndOfStreamException("server closed the connection");
        return JsonDocument.Parse(line).RootElement.Clone();
    }

    /// <summary>Reads until a reply (return or error) arrives; events on the way are kept.</summary>
    public async Task<JsonElement> ReadReplyAsync()
    {
        while (true)
        {
            var m = await ReadMessageAsync();
            if (m.TryGetProperty("event", out _))
            {
                _events.Add(m);
                continue;
            }

            return m;
        }
    }

    public async Task<JsonElement> ExecuteAsync(string command, object? arguments = null)
    {
        string args = arguments switch
        {
            null => "",
            string s => ", \"arguments\": " + s,
            _ => throw new ArgumentException("pass arguments as JSON text"),
        };
        await SendRawAsync("{\"execute\": \"" + command + "\"" + args + "}\n");
        return await ReadReplyAsync();
    }

    /// <summary>Runs a command that must succeed and returns its 'return' value.</summary>
    public async Task<JsonElement> ReturnAsync(string command, string? arguments = null)
    {
        var r = await ExecuteAsync(command, arguments);
        if (!r.TryGetProperty("return", out var ret))
            throw new InvalidOperationException($"{command} failed: {r}");
        return ret;
    }

    /// <summary>Runs a command that must fail; returns (class, desc).</summary>
    public async Task<(string Class, string Desc)> ErrorAsync(string command, string? arguments = null)
    {
        var r = await ExecuteAsync(command, arguments);
        if (!r.TryGetProperty("error", out var e))
            throw new InvalidOperationException($"{command} unexpectedly succeeded: {r}");
        return (e.GetProperty("class").GetString()!, e.GetProperty("desc").GetString()!);
    }

    public Task<JsonElement> WaitEventAsync(string name, int timeoutMs = 30000) => WaitEventAnyAsync([name], timeoutMs);

    /// <summary>The first event (received or to come) whose name is one of names; it is consumed, the others stay.</summary>
    public async Task<JsonElement> WaitEventAnyAsync(IReadOnlyCollection<string> names, int timeoutMs = 30000)
    {
        var deadline = DateTime.UtcNow.AddMilliseconds(timeoutMs);
        while (true)
        {
            int i = _events.FindIndex(e => names.Contains(e.GetProperty("event").GetString()!));
            if (i >= 0)
            {
                var e = _events[i];
                _events.RemoveAt(i);
                return e;
            }

            int left = (int)(deadline - DateTime.UtcNow).TotalMilliseconds;
            if (left <= 0)
                throw new TimeoutException("no " + string.Join(" or ", names) + " event");
            var m = await ReadMessageAsync(left);
            if (m.TryGetProperty("event", out _))
                _events.Add(m);
        }
    }

    /// <summary>Every event received so far, in order, up to and including the first one named name (waiting for it); all are consumed.</summary>
    public async Task<List<JsonElement>> EventsUntilAsync(string name, int timeoutMs = 30000)
    {
        var taken = new List<JsonElement>();
        while (true)
        {
            while (_events.Count > 0)
            {
                var e = _events[0];
                _events.RemoveAt(0);
                taken.Add(e);
                if (e.GetProperty("event").GetString() == name)
                    return taken;
            }

            var m = await ReadMessageAsync(timeoutMs);
            if (m.TryGetProperty("event", out _))
                _events.Add(m);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _reader.Dispose();
        await _stream.DisposeAsync();
        _socket.Dispose();
    }
}
