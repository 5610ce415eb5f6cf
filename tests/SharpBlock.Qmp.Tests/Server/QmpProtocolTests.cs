using SharpBlock.Testing;
using System.Text.Json;

namespace SharpBlock.Qmp.Tests.Server;

/// <summary>The monitor protocol itself over a real Unix socket: greeting, negotiation, framing, errors.</summary>
public class QmpProtocolTests
{
    [Fact]
    public async Task Greeting_announces_version_2_1_and_no_capabilities()
    {
        await using var h = QmpServerHarness.Start();
        await using var c = await h.ConnectAsync(negotiate: false);
        var v = c.Greeting.GetProperty("QMP").GetProperty("version");
        Assert.Equal(2, v.GetProperty("qemu").GetProperty("major").GetInt32());
        Assert.Equal(1, v.GetProperty("qemu").GetProperty("minor").GetInt32());
        Assert.Equal(0, v.GetProperty("qemu").GetProperty("micro").GetInt32());
        Assert.StartsWith("sharpblock ", v.GetProperty("package").GetString(), StringComparison.Ordinal);
        Assert.Equal(0, c.Greeting.GetProperty("QMP").GetProperty("capabilities").GetArrayLength());
    }

    [Fact]
    public async Task Commands_before_negotiation_are_refused_and_negotiation_happens_once()
    {
        await using var h = QmpServerHarness.Start();
        await using var c = await h.ConnectAsync(negotiate: false);
        Assert.Equal(("CommandNotFound", "Expecting capabilities negotiation with 'qmp_capabilities'"), await c.ErrorAsync("query-version"));
        await c.ReturnAsync("qmp_capabilities");
        Assert.Equal(("CommandNotFound", "Capabilities negotiation is already complete, command ignored"), await c.ErrorAsync("qmp_capabilities"));
        await c.ReturnAsync("query-version");
    }

    [Fact]
    public async Task Socket_file_is_private_to_its_owner()
    {
        await using var h = QmpServerHarness.Start();
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(h.SocketPath));
    }

    [Fact]
    public async Task Id_is_echoed_exactly_as_given()
    {
        await using var h = QmpServerHarness.Start();
        await using var c = await h.ConnectAsync();
        foreach (string id in new[] { "1", "\"abc\"", "{\"a\": [1, 2]}", "[true, null, 1.5]" })
        {
            await c.SendRawAsync("{\"execute\": \"query-version\", \"id\": " + id + "}");
            var r = await c.ReadReplyAsync();
            Assert.Equal(JsonDocument.Parse(id).RootElement.GetRawText().Replace(" ", ""), r.GetProperty("id").GetRawText().Replace(" ", ""));
        }

        await c.SendRawAsync("{\"execute\": \"nosuch\", \"id\": 7}");
        var e = await c.ReadReplyAsync();
        Assert.Equal(7, e.GetProperty("id").GetInt32());
        Assert.Equal("CommandNotFound", e.GetProperty("error").GetProperty("class").GetString());
    }

    [Theory]
    [InlineData("garbage", "JSON parse error, invalid keyword 'garbage'")]
    [InlineData("}", "JSON parse error, expecting value")]
    [InlineData("[1, 2]", "QMP input must be a JSON object")]
    [InlineData("42", "QMP input must be a JSON object")]
    [InlineData("{\"foo\": 1}", "QMP input member 'foo' is unexpected")]
    [InlineData("{\"execute\": 1}", "QMP input member 'execute' must be a string")]
    [InlineData("{\"execute\": \"query-version\", \"arguments\": []}", "QMP input member 'arguments' must be an object")]
    [InlineData("{\"arguments\": {}}", "QMP input lacks member 'execute'")]
    [InlineData("{\"execute\": \"nosuch\"}", "The command nosuch has not been found")]
    // QEMU refuses a key given twice at any depth, arguments included, and after unescaping; never "last wins".
    [InlineData("{\"execute\": \"query-version\", \"execute\": \"query-version\"}", "JSON parse error, duplicate key")]
    [InlineData("{\"execute\": \"query-version\", \"\\u0065xecute\": \"x\"}", "JSON parse error, duplicate key")]
    [InlineData("{\"execute\": \"query-version\", \"id\": [{\"a\": {\"b\": 1, \"b\": 2}}]}", "JSON parse error, duplicate key")]
    [InlineData("{\"execute\": \"blockdev-add\", \"arguments\": {\"options\": {\"driver\": \"raw\", \"id\": \"d\", \"driver\": \"qcow2\"}}}", "JSON parse error, duplicate key")]
    // Half a surrogate pair is no character: named as written, wherever the string is.
    [InlineData("{\"execute\": \"query-version\", \"id\": \"\\ud800\"}", "JSON parse error, \\ud800 is not a valid Unicode character")]
    [InlineData("{\"execute\": \"query-version\", \"id\": \"a\\uDBFFb\"}", "JSON parse error, \\uDBFF is not a valid Unicode character")]
    [InlineData("{\"execute\": \"query-version\", \"id\": \"\\ud800\\u0041\"}", "JSON parse error, \\ud800 is not a valid Unicode character")]
    [InlineData("{\"execute\": \"query-version\", \"id\": \"\\udc00x\"}", "JSON parse error, \\udc00 is not a valid Unicode character")]
    [InlineData("{\"execute\": \"nosuch\\ud800\"}", "JSON parse error, \\ud800 is not a valid Unicode character")]
    [InlineData("{\"execute\": \"blockdev-add\", \"arguments\": {\"options\": {\"driver\": \"raw\", \"id\": \"d\\udfff\"}}}", "JSON parse error, \\udfff is not a valid Unicode character")]
    [InlineData("{\"execute\": \"query-version\", \"\\ud800\": 1}", "JSON parse error, \\ud800 is not a valid Unicode character")]
    public async Task Malformed_messages_get_an_error_and_the_session_goes_on(string message, string desc)
    {
        await using var h = QmpServerHarness.Start();
        await using var c = await h.ConnectAsync();
        await c.SendRawAsync(message + "\n");
        var r = await c.ReadReplyAsync();
        Assert.Equal(desc, r.GetProperty("error").GetProperty("desc").GetString());
        await c.ReturnAsync("query-version");
    }

    [Fact]
    public async Task Keys_repeated_in_sibling_objects_whole_surrogate_pairs_and_escaped_backslashes_are_accepted()
    {
        await using var h = QmpServerHarness.Start();
        await using var c = await h.ConnectAsync();
        await c.SendRawAsync("{\"execute\": \"query-version\", \"id\": [\"\\ud83d\\ude00\", \"\\\\ud800\", {\"k\": 1}, {\"k\": 2}]}\n");
        var id = (await c.ReadReplyAsync()).GetProperty("id");
        Assert.Equal("\U0001F600", id[0].GetString());
        Assert.Equal("\\ud800", id[1].GetString());
        Assert.Equal(2, id[3].GetProperty("k").GetInt32());
    }

    [Fact]
    public async Task Bytes_that_are_not_utf8_get_qemus_parse_error_and_the_session_goes_on()
    {
        await using var h = QmpServerHarness.Start();
        await using var c = await h.ConnectAsync();
        await c.SendRawAsync([.. "{\"execute\": \"query-version\", \"id\": \""u8, 0xED, 0xA0, 0x80, .. "\"}\n"u8]);
        var r = await c.ReadReplyAsync();
        Assert.Equal("JSON parse error, invalid UTF-8 sequence in string", r.GetProperty("error").GetProperty("desc").GetString());
        await c.ReturnAsync("query-version");
    }

    [Fact]
    public async Task Messages_split_across_writes_and_packed_together_are_all_answered_in_order()
    {
        await using var h = QmpServerHarness.Start();
        await using var c = await h.ConnectAsync();
        string batch = "{\"execute\":\"query-version\",\"id\":1}{\"execute\":\"query-block\",\"id\":2}\n{\"execute\":\"query-block-jobs\",\"id\":3}";
        foreach (char ch in batch)
            await c.SendRawAsync(ch.ToString());
        for (int i = 1; i <= 3; i++)
            Assert.Equal(i, (await c.ReadReplyAsync()).GetProperty("id").GetInt32());
    }

    [Fact]
    public async Task A_message_over_the_size_limit_is_refused_without_ending_the_session()
    {
        await using var h = QmpServerHarness.Start();
        await using var c = await h.ConnectAsync();
        var big = new byte[17 << 20];
        "{\"execute\": \"query-version\", \"arguments\": {\"x\": \""u8.CopyTo(big);
        big.AsSpan(60).Fill((byte)'a');
        "\"}}"u8.CopyTo(big.AsSpan(big.Length - 3));
        var send = c.SendRawAsync(big);
        var r = await c.ReadReplyAsync();
        await send;
        Assert.Contains("exceeds", r.GetProperty("error").GetProperty("desc").GetString(), StringComparison.Ordinal);
        await c.ReturnAsync("query-version");
    }

    [Fact]
    public async Task Two_clients_are_served_at_the_same_time_with_their_own_negotiation()
    {
        await using var h = QmpServerHarness.Start();
        await using var a = await h.ConnectAsync();
        await using var b = await h.ConnectAsync(negotiate: false);
        Assert.Equal("CommandNotFound", (await b.ErrorAsync("query-block")).Class);
        await a.ReturnAsync("query-block");
        await b.ReturnAsync("qmp_capabilities");
        await b.ReturnAsync("query-block");
    }

    [Fact]
    public async Task Query_commands_lists_exactly_the_implemented_commands()
    {
        await using var h = QmpServerHarness.Start();
        await using var c = await h.ConnectAsync();
        var names = (await c.ReturnAsync("query-commands")).EnumerateArray().Select(e => e.GetProperty("name").GetString()!).ToHashSet();
        foreach (var n in new[] { "qmp_capabilities", "query-version", "query-commands", "blockdev-add", "query-block",
                     "query-named-block-nodes", "query-blockstats", "query-block-jobs", "block_resize", "eject", "block_passwd", "quit" })
            Assert.Contains(n, names);
        // Every listed command answers something other than CommandNotFound.
        foreach (var n in names)
        {
            if (n is "quit" or "qmp_capabilities")
                continue;
            var r = await c.ExecuteAsync(n);
            if (r.TryGetProperty("error", out var e))
                Assert.NotEqual("CommandNotFound", e.GetProperty("class").GetString());
        }

        // And a schema command not implemented here is absent and not found.
        foreach (var n in SharpBlock.Qmp.Schema.QmpCommandTable.SchemaCommands.Where(n => !names.Contains(n)))
            Assert.Equal(("CommandNotFound", $"The command {n} has not been found"), await c.ErrorAsync(n));
    }

    [Fact]
    public async Task Quit_answers_then_asks_the_daemon_to_stop()
    {
        await using var h = QmpServerHarness.Start();
        await using var c = await h.ConnectAsync();
        Assert.False(h.Server.QuitRequested.IsCompleted);
        await c.ReturnAsync("quit");
        await h.Server.QuitRequested.WaitAsync(TimeSpan.FromSeconds(10));
    }
}
