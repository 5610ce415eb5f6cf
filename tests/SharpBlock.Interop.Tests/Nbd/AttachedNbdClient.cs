using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;

namespace SharpBlock.Interop.Tests.Nbd;

/// <summary>
/// The least an NBD client can be: one that negotiates and then holds its connection, so tests can see what a
/// server does with an export that has a client attached (safe removal, max-connections).
/// </summary>
internal static class AttachedNbdClient
{
    /// <summary>A client that negotiates (fixed newstyle, NBD_OPT_GO) and then stays attached without a request.</summary>
    public static async Task<Socket> ConnectAsync(string socket, string export)
    {
        var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await s.ConnectAsync(new UnixDomainSocketEndPoint(socket));
        await ReadExactlyAsync(s, 18);
        byte[] name = Encoding.UTF8.GetBytes(export);
        var msg = new byte[4 + 16 + 4 + name.Length + 2];
        BinaryPrimitives.WriteUInt32BigEndian(msg, 3); // fixed newstyle, no zeroes
        BinaryPrimitives.WriteUInt64BigEndian(msg.AsSpan(4), 0x49484156454F5054); // IHAVEOPT
        BinaryPrimitives.WriteUInt32BigEndian(msg.AsSpan(12), 7); // NBD_OPT_GO
        BinaryPrimitives.WriteUInt32BigEndian(msg.AsSpan(16), (uint)(4 + name.Length + 2));
        BinaryPrimitives.WriteUInt32BigEndian(msg.AsSpan(20), (uint)name.Length);
        name.CopyTo(msg, 24);
        await s.SendAsync(msg);
        while (true)
        {
            var h = await ReadExactlyAsync(s, 20);
            uint type = BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(12));
            await ReadExactlyAsync(s, (int)BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(16)));
            if (type == 1) // NBD_REP_ACK: attached
                return s;
            if ((type & 0x80000000) != 0)
                throw new InvalidOperationException($"NBD_OPT_GO for '{export}' failed: 0x{type:x}");
        }
    }

    public static async Task<byte[]> ReadExactlyAsync(Socket s, int n)
    {
        var buf = new byte[n];
        using var stream = new NetworkStream(s, ownsSocket: false);
        using var cts = new CancellationTokenSource(30_000);
        await stream.ReadExactlyAsync(buf, cts.Token);
        return buf;
    }

    public static async Task<string> ReadToEndAsync(Socket s)
    {
        using var stream = new NetworkStream(s, ownsSocket: false);
        using var cts = new CancellationTokenSource(30_000);
        var buf = new byte[64];
        int total = 0;
        int n;
        while ((n = await stream.ReadAsync(buf, cts.Token)) > 0)
            total += n;
        return total + " bytes, then end of stream";
    }
}
