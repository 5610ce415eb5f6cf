using SharpBlock.Testing;
using SharpBlock.Schema;

namespace SharpBlock.Qmp.Tests.Server;

public class QmpEventTests
{
    [Fact]
    public async Task Events_reach_every_negotiated_client_with_a_timestamp()
    {
        await using var h = QmpServerHarness.Start();
        await using var a = await h.ConnectAsync();
        await using var b = await h.ConnectAsync();
        await using var late = await h.ConnectAsync(negotiate: false);
        long before = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        h.Graph.Events.Raise(new DeviceTrayMovedEvent { Device = "d0", TrayOpen = true });
        foreach (var c in new[] { a, b })
        {
            var e = await c.WaitEventAsync("DEVICE_TRAY_MOVED");
            Assert.Equal("d0", e.GetProperty("data").GetProperty("device").GetString());
            Assert.True(e.GetProperty("data").GetProperty("tray-open").GetBoolean());
            var ts = e.GetProperty("timestamp");
            Assert.InRange(ts.GetProperty("seconds").GetInt64(), before, before + 60);
            Assert.InRange(ts.GetProperty("microseconds").GetInt64(), 0, 999_999);
        }

        // A client that has not negotiated gets no events: its next line is the reply to its command.
        await late.SendRawAsync("{\"execute\": \"qmp_capabilities\"}\n");
        var first = await late.ReadMessageAsync();
        Assert.True(first.TryGetProperty("return", out _), first.ToString());
    }

    [Fact]
    public async Task Nesting_beyond_the_limit_is_refused_and_the_session_goes_on()
    {
        await using var h = QmpServerHarness.Start();
        await using var c = await h.ConnectAsync();
        int depth = SharpBlock.Qmp.Protocol.QmpFrameScanner.MaxDepth + 10;
        await c.SendRawAsync("{\"execute\": \"query-version\", \"id\": " + new string('[', depth) + new string(']', depth) + "}\n");
        var r = await c.ReadReplyAsync();
        Assert.Contains("nesting", r.GetProperty("error").GetProperty("desc").GetString(), StringComparison.Ordinal);
        await c.ReturnAsync("query-version");
    }
}
