using System.Net;
using System.Net.Sockets;

namespace SharpBlock.Net;

/// <summary>
/// One listening socket of a protocol server (QMP or NBD): binds, accepts until disposed, and hands each
/// client socket to the server. Unix socket files are created mode 0600, so only their owner can connect,
/// and removed again when the listener closes.
/// </summary>
public sealed class SocketListener : IDisposable
{
    private const int Backlog = 32;

    private readonly Socket _socket;
    private readonly string? _socketFile;
    private readonly CancellationTokenSource _stopping = new();
    private Task _accepting = Task.CompletedTask;

    private SocketListener(Socket socket, string? socketFile, string display)
    {
        _socket = socket;
        _socketFile = socketFile;
        Display = display;
    }

    /// <summary>Where it listens: "unix:PATH" or the bound "HOST:PORT"; also the peer name of clients without one.</summary>
    public string Display { get; }

    /// <summary>The bound TCP endpoint (the real port when 0 was asked for); null for a Unix socket.</summary>
    public IPEndPoint? TcpEndPoint => _socket.LocalEndPoint as IPEndPoint;

    /// <summary>Completes when the accept loop has ended.</summary>
    public Task Accepting => _accepting;

    /// <summary>
    /// Listens on a Unix socket, replacing a stale socket file. A socket another live process listens on is
    /// refused: taking its path over would leave that process unreachable (and its socket file deleted when
    /// we exit). A directory in the way is an error.
    /// </summary>
    public static SocketListener ListenUnix(string path)
    {
        if (Directory.Exists(path))
            throw new IOException($"'{path}' is a directory");
        if (File.Exists(path))
        {
            if (SomeoneListens(path))
                throw new IOException($"Failed to bind socket to {path}: Address already in use (another process is listening on it)");
            File.Delete(path);
        }

        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            UnixPermissions.CreateOwnerOnly(() => socket.Bind(new UnixDomainSocketEndPoint(path)));
            // The umask already made it so; this holds even where a default ACL on the directory adds bits.
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            socket.Listen(Backlog);
        }
        catch (SocketException ex)
        {
            socket.Dispose();
            throw new IOException($"Failed to bind socket to {path}: {ex.Message}", ex);
        }

        return new SocketListener(socket, path, "unix:" + path);
    }

    private static bool SomeoneListens(string path)
    {
        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
            return true;
        }
        catch (SocketException)
        {
            // Refused (nobody listens: a stale file left by a killed process) or not a socket at all.
            return false;
        }
    }

    /// <summary>
    /// Accepts on a socket that was bound elsewhere and handed over as a descriptor. Its socket file, if any,
    /// is its creator's: it is left in place at close.
    /// </summary>
    public static SocketListener Adopt(SafeSocketHandle handle)
    {
        Socket socket;
        try
        {
            socket = new Socket(handle);
        }
        catch (SocketException ex)
        {
            handle.Dispose();
            throw new IOException($"The file descriptor is not a socket: {ex.Message}", ex);
        }

        try
        {
            if (socket.SocketType != SocketType.Stream)
                throw new IOException("The file descriptor is not a stream socket");
            // Already listening in the usual case; listen(2) again only sets the backlog.
            socket.Listen(Backlog);
        }
        catch (Exception ex) when (ex is SocketException or IOException)
        {
            socket.Dispose();
            throw ex as IOException ?? new IOException($"Failed to listen on the passed socket: {ex.Message}", ex);
        }

        string display = socket.LocalEndPoint switch
        {
            UnixDomainSocketEndPoint u => "unix:" + u,
            { } ep => ep.ToString()!,
            null => "fd",
        };
        return new SocketListener(socket, null, display);
    }

    /// <summary>Listens on TCP (port 0 picks a free port).</summary>
    public static SocketListener ListenTcp(IPEndPoint endpoint)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            socket.NoDelay = true;
            socket.Bind(endpoint);
            socket.Listen(Backlog);
        }
        catch (SocketException ex)
        {
            socket.Dispose();
            throw new IOException($"Failed to listen on {endpoint}: {ex.Message}", ex);
        }

        return new SocketListener(socket, null, socket.LocalEndPoint!.ToString()!);
    }

    /// <summary>
    /// Listens on the first address and port that binds, trying each address with every port from first to
    /// last in turn as QEMU's inet_listen does; when none binds, the last failure is the error, in 2.1's
    /// words ("Failed to bind socket: Address already in use").
    /// </summary>
    public static SocketListener ListenTcp(IReadOnlyList<IPAddress> addresses, int firstPort, int lastPort)
    {
        SocketException? last = null;
        foreach (var address in addresses)
        {
            Socket socket;
            try
            {
                socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            }
            catch (SocketException ex)
            {
                // No IPv6 on this host, say: the next address may still do.
                last = ex;
                continue;
            }

            try
            {
                socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
                if (address.AddressFamily == AddressFamily.InterNetworkV6)
                    socket.DualMode = true;
                socket.NoDelay = true;
                for (int port = firstPort; port <= lastPort; port++)
                {
                    try
                    {
                        socket.Bind(new IPEndPoint(address, port));
                        socket.Listen(Backlog);
                        return new SocketListener(socket, null, socket.LocalEndPoint!.ToString()!);
                    }
                    catch (SocketException ex) when (ex.SocketErrorCode is SocketError.AddressAlreadyInUse or SocketError.AccessDenied)
                    {
                        last = ex;
                    }
                }
            }
            catch (SocketException ex)
            {
                last = ex;
            }

            socket.Dispose();
        }

        throw new IOException("Failed to bind socket" + (last is null ? "" : ": " + last.Message), last);
    }

    /// <summary>
    /// Accepts clients until disposed; each goes to <paramref name="serve"/> as a stream that owns the socket,
    /// with the client's address (or this listener's, for Unix clients, which have none).
    /// </summary>
    public void Start(Action<NetworkStream, string> serve) => Start(serve, null, null);

    /// <summary>
    /// As <see cref="Start(Action{NetworkStream, string})"/>, but each accept first awaits
    /// <paramref name="beforeAccept"/> (a free connection slot, say); when no client comes of it (the listener
    /// closed), <paramref name="unused"/> gives the slot back. A served client gives it back itself.
    /// </summary>
    public void Start(Action<NetworkStream, string> serve, Func<CancellationToken, Task>? beforeAccept, Action? unused)
    {
        _accepting = Task.Run(async () =>
        {
            while (!_stopping.IsCancellationRequested)
            {
                Socket client;
                try
                {
                    if (beforeAccept != null)
                        await beforeAccept(_stopping.Token).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is ObjectDisposedException or OperationCanceledException)
                {
                    return;
                }

                try
                {
                    client = await _socket.AcceptAsync(_stopping.Token).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is SocketException or ObjectDisposedException or OperationCanceledException)
                {
                    unused?.Invoke();
                    return;
                }

                // Requests and replies are small frames; waiting to coalesce them only adds latency.
                if (client.AddressFamily != AddressFamily.Unix)
                    client.NoDelay = true;
                string peer = client.RemoteEndPoint?.ToString() is { Length: > 0 } ep ? ep : Display;
                serve(new NetworkStream(client, ownsSocket: true), peer);
            }
        });
    }

    /// <summary>Stops accepting and removes the socket file; connected clients are their server's to end.</summary>
    public void Dispose()
    {
        if (_stopping.IsCancellationRequested)
            return;
        _stopping.Cancel();
        _socket.Dispose();
        if (_socketFile != null)
        {
            try
            {
                File.Delete(_socketFile);
            }
            catch (IOException)
            {
            }
        }

        _stopping.Dispose();
    }
}
