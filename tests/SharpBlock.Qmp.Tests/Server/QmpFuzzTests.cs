using SharpBlock.Testing;
using System.Text;

namespace SharpBlock.Qmp.Tests.Server;

/// <summary>
/// Throws random bytes, random JSON and mutations of valid commands at a live server. Whatever arrives,
/// the server answers or ignores it and keeps serving: after every batch a clean command must succeed, and no
/// command may fail with an internal error (a bug answered generically). The seed differs per run; set
/// QMP_FUZZ_SEED to replay one, and a failure names the seed and the batch that caused it.
/// </summary>
public class QmpFuzzTests
{
    private static readonly string[] Seeds =
    [
        """{"execute": "blockdev-add", "arguments": {"options": {"driver": "raw", "id": "d", "file": {"driver": "file", "filename": "/nonexistent"}}}}""",
        """{"execute": "block_resize", "arguments": {"device": "d0", "size": 1048576}, "id": 5}""",
        """{"execute": "query-block"}""",
        """{"execute": "query-blockstats", "id": {"x": [1, 2, {"y": null}]}}""",
        """{"execute": "eject", "arguments": {"device": "nosuch", "force": true}}""",
        """{"execute": "blockdev-del", "arguments": {"node-name": "zz"}}""",
    ];

    private static string RandomJson(Random r, int depth)
    {
        switch (r.Next(depth > 4 ? 5 : 8))
        {
            case 0: return r.Next(-1000, 1000).ToString(System.Globalization.CultureInfo.InvariantCulture);
            case 1: return "\"" + new string((char)r.Next(32, 127), r.Next(0, 5)).Replace("\\", "").Replace("\"", "") + "\"";
            case 2: return r.Next(2) == 0 ? "true" : "null";
            case 3: return "1.5e3";
            case 4: return "\"\\u00e9\\n\"";
            case 5:
            case 6:
                var sb = new StringBuilder("{");
                int n = r.Next(4);
                for (int i = 0; i < n; i++)
                    sb.Append(i > 0 ? ", " : "").Append('"').Append(new[] { "execute", "arguments", "id", "device", "size", "options", "driver", "file" }[r.Next(8)]).Append("\": ").Append(RandomJson(r, depth + 1));
                return sb.Append('}').ToString();
            default:
                return "[" + string.Join(", ", Enumerable.Range(0, r.Next(3)).Select(_ => RandomJson(r, depth + 1))) + "]";
        }
    }

    private static string Mutate(Random r, string s)
    {
        var chars = s.ToCharArray().ToList();
        int edits = r.Next(1, 4);
        for (int i = 0; i < edits && chars.Count > 0; i++)
        {
            int at = r.Next(chars.Count);
            switch (r.Next(3))
            {
                case 0: chars.RemoveAt(at); break;
                case 1: chars.Insert(at, "{}[]\":,x1 \\"[r.Next(11)]); break;
                default: chars[at] = (char)r.Next(32, 127); break;
            }
        }

        return new string(chars.ToArray());
    }

    /// <summary>Sends text on a fresh negotiated connection, ends the sending side and reads every reply.</summary>
    private static async Task<string> SendAndDrainAsync(string socketPath, byte[] payload)
    {
        using var s = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
        await s.ConnectAsync(new System.Net.Sockets.UnixDomainSocketEndPoint(socketPath));
        await s.SendAsync("{\"execute\": \"qmp_capabilities\"}\n"u8.ToArray());
        await s.SendAsync(payload);
        s.Shutdown(System.Net.Sockets.SocketShutdown.Send);
        var buf = new byte[65536];
        var all = new MemoryStream();
        // A hang is a failure: the token's cancellation ends the test with it.
        using var cts = new CancellationTokenSource(30000);
        while (true)
        {
            int n = await s.ReceiveAsync(buf, cts.Token);
            if (n == 0)
                return Encoding.UTF8.GetString(all.ToArray());
            all.Write(buf, 0, n);
        }
    }

    [Fact]
    public async Task Random_and_mutated_messages_never_stop_the_server()
    {
        await using var h = QmpServerHarness.Start();
        await using var c = await h.ConnectAsync();
        await c.ReturnAsync("blockdev-add", QmpServerHarness.RawDevice("d0", h.Dir.PatternFile("d.img", 65536)));
        int seed = Environment.GetEnvironmentVariable("QMP_FUZZ_SEED") is { } given
            ? int.Parse(given, System.Globalization.CultureInfo.InvariantCulture)
            : Random.Shared.Next();
        var r = new Random(seed);
        int returns = 0, errors = 0, batches = 0;
        for (int batch = 0; batch < 40; batch++)
        {
            var sb = new StringBuilder();
            for (int i = 0; i < 25; i++)
            {
                sb.Append(r.Next(3) switch
                {
                    0 => RandomJson(r, 0),
                    1 => Mutate(r, Seeds[r.Next(Seeds.Length)]),
                    _ => Seeds[r.Next(Seeds.Length)],
                });
                sb.Append(r.Next(2) == 0 ? "\n" : " ");
            }

            // The server answers what it could parse and closes when the client is done: it never hangs.
            string input = sb.ToString();
            string replies = await SendAndDrainAsync(h.SocketPath, Encoding.UTF8.GetBytes(input));
            // One return is the negotiation's own; the rest answer the batch.
            returns += CountOf(replies, "{\"return\"") - 1;
            errors += CountOf(replies, "{\"error\"");
            Assert.True(h.Server.InternalErrors == 0, $"internal error with QMP_FUZZ_SEED={seed}, batch {batch}, input:\n{input}");
            await c.ReturnAsync("query-version");
            batches++;
        }

        Assert.Equal(40, batches);
        Assert.True(returns > 0 && errors > 0, $"QMP_FUZZ_SEED={seed}: {returns} commands accepted, {errors} refused; both kinds must occur");
        var bytes = new byte[100_000];
        r.NextBytes(bytes);
        await SendAndDrainAsync(h.SocketPath, bytes);
        await c.ReturnAsync("query-block");
        Assert.NotNull(h.Graph.FindDevice("d0"));
        Assert.True(h.Server.InternalErrors == 0, $"internal error with QMP_FUZZ_SEED={seed} from random bytes");
    }

    [Fact]
    public async Task A_command_that_fails_with_a_bug_is_counted_and_answered_without_net_text()
    {
        // The counter the fuzz test holds at zero must move when a command fails with a bug.
        await using var h = QmpServerHarness.Start();
        h.Server.Register(new SharpBlock.Qmp.Server.QmpCommand("x-broken", static (_, _) => throw new InvalidOperationException("Sequence contains no elements")));
        await using var c = await h.ConnectAsync();
        var (cls, desc) = await c.ErrorAsync("x-broken");
        Assert.Equal("GenericError", cls);
        Assert.DoesNotContain("Sequence", desc, StringComparison.Ordinal);
        Assert.Equal(1, h.Server.InternalErrors);
        await c.ErrorAsync("eject", """{"device": "nosuch"}""");
        Assert.Equal(1, h.Server.InternalErrors);
    }

    private static int CountOf(string text, string what)
    {
        int n = 0;
        for (int at = text.IndexOf(what, StringComparison.Ordinal); at >= 0; at = text.IndexOf(what, at + what.Length, StringComparison.Ordinal))
            n++;
        return n;
    }
}
