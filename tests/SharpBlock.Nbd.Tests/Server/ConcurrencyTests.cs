using SharpBlock.Nbd.Protocol;
using SharpBlock.Nbd.Server;

namespace SharpBlock.Nbd.Tests.Server;

/// <summary>Many requests in flight on one connection, answered as they finish.</summary>
public class ConcurrencyTests
{
    [Fact]
    public async Task A_slow_request_does_not_hold_back_later_ones()
    {
        GatedNode.Gate = new(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var s = await NbdTestServer.StartAsync(GatedNode.Registry());
        string path = s.Dir.PatternFile("d.raw", 1 << 20);
        await s.ExportFileAsync("d", path, writable: true);
        var (c, _) = await RawNbdClient.OpenAsync(s.Socket, "d");
        await using var _c = c;

        await c.SendRequestAsync(NbdCommand.Read, 1, 0, 4096, NbdCommandFlags.Df);
        await c.SendRequestAsync(NbdCommand.Read, 2, 8192, 4096, NbdCommandFlags.Df);
        await c.SendRequestAsync(NbdCommand.Write, 3, 65536, 4, data: [9, 9, 9, 9]);
        var first = await c.ReadReplyAsync();
        var second = await c.ReadReplyAsync();
        Assert.Equal([2UL, 3UL], new[] { first.Cookie, second.Cookie }.Order());

        GatedNode.Gate.SetResult();
        var last = await c.ReadReplyAsync();
        Assert.Equal(1UL, last.Cookie);
        Assert.Equal(File.ReadAllBytes(path)[..4096], last.Payload[8..]);
    }

    [Fact]
    public async Task Requests_over_the_in_flight_cap_wait_and_still_complete()
    {
        GatedNode.Gate = new(TaskCreationOptions.RunContinuationsAsynchronously);
        var limits = new NbdServerLimits { MaxRequestsInFlight = 2, MaxBytesInFlight = 1 << 20 };
        await using var s = await NbdTestServer.StartAsync(GatedNode.Registry(), limits);
        string path = s.Dir.PatternFile("d.raw", 1 << 20);
        await s.ExportFileAsync("d", path, writable: true);
        var (c, _) = await RawNbdClient.OpenAsync(s.Socket, "d");
        await using var _c = c;

        // Two gated reads fill the cap; the third request is not even read until one finishes.
        await c.SendRequestAsync(NbdCommand.Read, 1, 0, 512, NbdCommandFlags.Df);
        await c.SendRequestAsync(NbdCommand.Read, 2, 0, 512, NbdCommandFlags.Df);
        await c.SendRequestAsync(NbdCommand.Read, 3, 4096, 512, NbdCommandFlags.Df);
        var early = c.ReadReplyAsync();
        await Task.Delay(300);
        Assert.False(early.IsCompleted);

        GatedNode.Gate.SetResult();
        var cookies = new List<ulong> { (await early).Cookie, (await c.ReadReplyAsync()).Cookie, (await c.ReadReplyAsync()).Cookie };
        Assert.Equal([1UL, 2UL, 3UL], cookies.Order());
    }

    [Fact]
    public async Task Many_pipelined_requests_on_many_connections()
    {
        await using var s = await NbdTestServer.StartAsync();
        string path = s.Dir.PatternFile("d.raw", 4 << 20);
        await s.ExportFileAsync("d", path, writable: true);
        var expected = File.ReadAllBytes(path);
        var tasks = Enumerable.Range(0, 4).Select(async conn =>
        {
            var (c, _) = await RawNbdClient.OpenAsync(s.Socket, "d");
            await using var _c = c;
            for (int i = 0; i < 64; i++)
                await c.SendRequestAsync(NbdCommand.Read, (ulong)i, (ulong)(i * 65536), 65536, NbdCommandFlags.Df);
            var seen = new HashSet<ulong>();
            for (int i = 0; i < 64; i++)
            {
                var r = await c.ReadReplyAsync();
                Assert.True(seen.Add(r.Cookie));
                int at = (int)r.Cookie * 65536;
                Assert.Equal(expected[at..(at + 65536)], r.Payload[8..]);
            }
        });
        await Task.WhenAll(tasks);
    }
}
