using System.Net.Sockets;

namespace SharpBlock.Testing;

/// <summary>
/// Waits until a Unix socket accepts connections. qemu-nbd creates the socket file before it listens, so
/// the file appearing is not enough: a client that connects in between is refused.
/// </summary>
public static class SocketWait
{
    public static async Task ForListenerAsync(string path, int timeoutMs = 30000)
    {
        var deadline = DateTime.UtcNow.AddMilliseconds(timeoutMs);
        while (true)
        {
            if (File.Exists(path))
            {
                using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await s.ConnectAsync(new UnixDomainSocketEndPoint(path));
                    return;
                }
                catch (SocketException) when (DateTime.UtcNow < deadline)
                {
                }
            }
            else if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("nothing listens on " + path);
            }

            await Task.Delay(20);
        }
    }
}
