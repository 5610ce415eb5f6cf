using System.Text.Json;
using SharpBlock.Errors;
using SharpBlock.Testing;

namespace SharpBlock.Qmp.Tests.Policy;

/// <summary>
/// rerror/werror watched on real I/O: blkdebug fails requests, the test sees what the caller gets, what
/// the file holds, io-status in query-block and BLOCK_IO_ERROR on the wire.
/// </summary>
public class ErrorPolicyTests
{
    private static byte[] Pattern(int size, int seed)
    {
        var b = new byte[size];
        new Random(seed).NextBytes(b);
        return b;
    }

    private static void AssertEvent(JsonElement e, string device, string operation, string action, bool? nospace)
    {
        var d = e.GetProperty("data");
        Assert.Equal(device, d.GetProperty("device").GetString());
        Assert.Equal(operation, d.GetProperty("operation").GetString());
        Assert.Equal(action, d.GetProperty("action").GetString());
        if (nospace is { } ns)
            Assert.Equal(ns, d.GetProperty("nospace").GetBoolean());
        else
            Assert.False(d.TryGetProperty("nospace", out _));
        Assert.True(e.GetProperty("timestamp").GetProperty("seconds").GetInt64() > 0);
    }

    [Fact]
    public async Task Werror_stop_holds_the_write_until_cont_then_retries_it()
    {
        await using var h = await QmpHarness.StartAsync();
        string img = h.Dir.PatternFile("a.img", 1 << 20);
        var dev = await h.AddRawAsync("d0", img, ", \"werror\": \"stop\"",
            QmpHarness.Blkdebug(img, "\"inject-error\": [{\"event\": \"write_aio\", \"once\": true}]"));
        Assert.Equal("ok", (await h.QueryDeviceAsync("d0")).GetProperty("io-status").GetString());

        var data = Pattern(65536, 3);
        var write = dev.WriteAsync(131072, data).AsTask();
        var ev = await h.Client.WaitEventAsync("BLOCK_IO_ERROR");
        AssertEvent(ev, "d0", "write", "stop", nospace: false);
        Assert.Equal("Input/output error", ev.GetProperty("data").GetProperty("reason").GetString());

        // Stopped: io-status failed, the write has no answer, and new requests wait too.
        Assert.Equal("failed", (await h.QueryDeviceAsync("d0")).GetProperty("io-status").GetString());
        var read = dev.ReadAsync(0, new byte[512]).AsTask();
        await Task.Delay(200);
        Assert.False(write.IsCompleted);
        Assert.False(read.IsCompleted);
        Assert.True(dev.IsStopped);
        Assert.NotEqual(data, File.ReadAllBytes(img).AsSpan(131072, 65536).ToArray());

        // Shutting down must not wait for 'cont': the exit flush goes straight to the media.
        await h.Graph.FlushAllAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));

        await h.Client.ReturnAsync("cont");
        await write.WaitAsync(TimeSpan.FromSeconds(10));
        await read.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("ok", (await h.QueryDeviceAsync("d0")).GetProperty("io-status").GetString());
        Assert.Equal(data, File.ReadAllBytes(img).AsSpan(131072, 65536).ToArray());
    }

    [Fact]
    public async Task Rerror_stop_holds_the_read_and_cont_returns_the_data()
    {
        await using var h = await QmpHarness.StartAsync();
        string img = h.Dir.PatternFile("a.img", 1 << 20, seed: 9);
        var dev = await h.AddRawAsync("d0", img, ", \"rerror\": \"stop\", \"werror\": \"report\"",
            QmpHarness.Blkdebug(img, "\"inject-error\": [{\"event\": \"read_aio\", \"once\": true, \"immediately\": true}]"));
        var buf = new byte[4096];
        var read = dev.ReadAsync(8192, buf).AsTask();
        AssertEvent(await h.Client.WaitEventAsync("BLOCK_IO_ERROR"), "d0", "read", "stop", nospace: false);
        Assert.False(read.IsCompleted);
        Assert.Equal("failed", (await h.QueryDeviceAsync("d0")).GetProperty("io-status").GetString());
        await h.Client.ReturnAsync("cont");
        await read.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(File.ReadAllBytes(img).AsSpan(8192, 4096).ToArray(), buf);
    }

    [Fact]
    public async Task Report_returns_the_error_to_the_caller()
    {
        await using var h = await QmpHarness.StartAsync();
        string img = h.Dir.PatternFile("a.img", 1 << 20);
        var dev = await h.AddRawAsync("d0", img, ", \"rerror\": \"report\", \"werror\": \"report\"",
            QmpHarness.Blkdebug(img, "\"inject-error\": [{\"event\": \"read_aio\", \"errno\": 61, \"once\": true}]"));
        var ex = await Assert.ThrowsAsync<BlockException>(async () => await dev.ReadAsync(0, new byte[512]));
        Assert.Equal(Errno.ENODATA, ex.Errno);
        AssertEvent(await h.Client.WaitEventAsync("BLOCK_IO_ERROR"), "d0", "read", "report", nospace: null);
        Assert.False(dev.IsStopped);
        // No stop policy, so no io-status, as QEMU shows it.
        Assert.False((await h.QueryDeviceAsync("d0")).TryGetProperty("io-status", out _));
        await dev.ReadAsync(0, new byte[512]);
    }

    [Fact]
    public async Task Ignore_completes_the_request_as_if_it_succeeded()
    {
        await using var h = await QmpHarness.StartAsync();
        string img = h.Dir.PatternFile("a.img", 1 << 20);
        byte[] before = File.ReadAllBytes(img);
        var dev = await h.AddRawAsync("d0", img, ", \"werror\": \"ignore\"",
            QmpHarness.Blkdebug(img, "\"inject-error\": [{\"event\": \"write_aio\", \"once\": true}]"));
        await dev.WriteAsync(0, Pattern(4096, 5));
        AssertEvent(await h.Client.WaitEventAsync("BLOCK_IO_ERROR"), "d0", "write", "ignore", nospace: null);
        // The write 'succeeded' for its caller, but the failure kept it from the disk.
        Assert.Equal(before, File.ReadAllBytes(img));
        Assert.Equal(1, dev.Stats.WriteOperations);
        var data = Pattern(4096, 6);
        await dev.WriteAsync(0, data);
        Assert.Equal(data, File.ReadAllBytes(img).AsSpan(0, 4096).ToArray());
    }

    [Fact]
    public async Task Enospc_stops_on_ENOSPC_and_reports_anything_else()
    {
        await using var h = await QmpHarness.StartAsync();
        string img = h.Dir.PatternFile("a.img", 1 << 20);
        // First write: EIO (reported). Second: ENOSPC (stops).
        var dev = await h.AddRawAsync("d0", img, ", \"werror\": \"enospc\"", QmpHarness.Blkdebug(img,
            "\"inject-error\": [{\"event\": \"write_aio\", \"state\": 1, \"errno\": 5, \"once\": true}," +
            " {\"event\": \"write_aio\", \"state\": 2, \"errno\": 28, \"once\": true}]," +
            " \"set-state\": [{\"event\": \"write_aio\", \"state\": 1, \"new_state\": 2}]"));
        var ex = await Assert.ThrowsAsync<BlockException>(async () => await dev.WriteAsync(0, new byte[512]));
        Assert.Equal(Errno.EIO, ex.Errno);
        AssertEvent(await h.Client.WaitEventAsync("BLOCK_IO_ERROR"), "d0", "write", "report", nospace: false);
        Assert.Equal("ok", (await h.QueryDeviceAsync("d0")).GetProperty("io-status").GetString());

        var data = Pattern(512, 8);
        var write = dev.WriteAsync(4096, data).AsTask();
        AssertEvent(await h.Client.WaitEventAsync("BLOCK_IO_ERROR"), "d0", "write", "stop", nospace: true);
        Assert.Equal("nospace", (await h.QueryDeviceAsync("d0")).GetProperty("io-status").GetString());
        Assert.False(write.IsCompleted);
        await h.Client.ReturnAsync("cont");
        await write.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("ok", (await h.QueryDeviceAsync("d0")).GetProperty("io-status").GetString());
        Assert.Equal(data, File.ReadAllBytes(img).AsSpan(4096, 512).ToArray());
    }

    [Fact]
    public async Task Flush_errors_follow_the_write_policy()
    {
        await using var h = await QmpHarness.StartAsync();
        string img = h.Dir.PatternFile("a.img", 1 << 20);
        var dev = await h.AddRawAsync("d0", img, ", \"werror\": \"stop\"",
            QmpHarness.Blkdebug(img, "\"inject-error\": [{\"event\": \"flush_to_disk\", \"once\": true}]"));
        var flush = dev.FlushAsync().AsTask();
        AssertEvent(await h.Client.WaitEventAsync("BLOCK_IO_ERROR"), "d0", "write", "stop", nospace: false);
        Assert.False(flush.IsCompleted);
        await h.Client.ReturnAsync("cont");
        await flush.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(1, dev.Stats.FlushOperations);
    }

    [Fact]
    public async Task Enospc_is_not_a_read_error_action()
    {
        await using var h = await QmpHarness.StartAsync();
        string img = h.Dir.PatternFile("a.img", 4096);
        var (cls, desc) = await h.Client.ErrorAsync("blockdev-add",
            $"{{\"driver\": \"raw\", \"id\": \"d0\", \"rerror\": \"enospc\", \"file\": {{\"driver\": \"file\", \"filename\": {JsonSerializer.Serialize(img)}}}}}");
        Assert.Equal(("GenericError", "'enospc' invalid read error action"), (cls, desc));
        Assert.Empty((await h.Client.ReturnAsync("query-block")).EnumerateArray());
    }
}
