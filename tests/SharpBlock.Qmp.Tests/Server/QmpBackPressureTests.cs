using System.Net.Sockets;
using System.Text;
using SharpBlock.Testing;

namespace SharpBlock.Qmp.Tests.Server;

/// <summary>A client that sends commands and never reads its replies, against a live server on a real socket.</summary>
public class QmpBackPressureTests
{
    private static readonly byte[] Command = "{\"execute\": \"query-version\"}\n"u8.ToArray();

    /// <summary>Sends whole batches of commands without reading until the server stops taking them (or a cap).</summary>
    private static long SendUntilStalled(Socket s, long cap)
    {
        var batch = new byte[Command.Length * 1024];
        for (int i = 0; i < 1024; i++)
            Command.CopyTo(batch, i * Command.Length);
        s.Blocking = false;
        long sent = 0;
        var lastProgress = DateTime.UtcNow;
        while (sent < cap && DateTime.UtcNow - lastProgress < TimeSpan.FromSeconds(3))
        {
            int off = (int)(sent % batch.Length);
            int n = s.Send(batch, off, batch.Length - off, SocketFlags.None, out var err);
            if (err == SocketError.WouldBlock || n <= 0)
            {
                Thread.Sleep(20);
                continue;
            }

            Assert.Equal(SocketError.Success, err);
            sent += n;
            lastProgress = DateTime.UtcNow;
        }

        s.Blocking = true;
        return sent;
    }

    [Fact]
    public async Task A_client_that_never_reads_replies_stops_being_read_others_are_served_and_no_reply_is_lost()
    {
        await using var h = QmpServerHarness.Start();
        await using var other = await h.ConnectAsync();
        using var hog = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await hog.ConnectAsync(new UnixDomainSocketEndPoint(h.SocketPath));
        await hog.SendAsync("{\"execute\": \"qmp_capabilities\"}\n"u8.ToArray());

        // Unbounded replies would let the server take all of this: ~1.1M commands, some 150 MB of replies.
        const long cap = 32L << 20;
        long sent = await Task.Run(() => SendUntilStalled(hog, cap));
        // What the server took is bounded by the reply limit and the sockets' buffers, far below the cap.
        Assert.True(sent < 8L << 20, $"the server kept reading a client that does not read: {sent} bytes taken");

        // The stalled client costs the others nothing.
        for (int i = 0; i < 20; i++)
            await other.ReturnAsync("query-version");

        // Finish the command cut in half, then read: every command got its reply, in order, none dropped.
        int partial = (int)(sent % Command.Length);
        long commands = (sent + Command.Length - 1) / Command.Length;
        var finish = partial == 0 ? Task.CompletedTask : hog.SendAsync(Command.AsMemory(partial)).AsTask();
        using var reader = new StreamReader(new NetworkStream(hog, ownsSocket: false), Encoding.UTF8);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        Assert.StartsWith("{\"QMP\"", await reader.ReadLineAsync(cts.Token), StringComparison.Ordinal);
        Assert.Equal("{\"return\": {}}", await reader.ReadLineAsync(cts.Token));
        for (long i = 0; i < commands; i++)
        {
            string? line = await reader.ReadLineAsync(cts.Token);
            Assert.NotNull(line);
            Assert.StartsWith("{\"return\": {\"qemu\"", line, StringComparison.Ordinal);
        }

        await finish;
        await other.ReturnAsync("query-version");
    }
}
