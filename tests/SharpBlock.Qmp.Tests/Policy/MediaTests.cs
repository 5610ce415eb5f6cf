using System.Text.Json;
using SharpBlock.Errors;
using SharpBlock.Testing;

namespace SharpBlock.Qmp.Tests.Policy;

/// <summary>eject (with blockers and force), the tray and DEVICE_TRAY_MOVED, change of medium.</summary>
public class MediaTests
{
    private static void AssertTray(JsonElement e, bool open)
    {
        Assert.Equal("d0", e.GetProperty("data").GetProperty("device").GetString());
        Assert.Equal(open, e.GetProperty("data").GetProperty("tray-open").GetBoolean());
    }

    /// <summary>
    /// Events raised by a command go out before its reply; so once a later command has been answered, an
    /// event that is not among those received was never sent.
    /// </summary>
    private static async Task AssertNoEventAsync(QmpHarness h, string name)
    {
        await h.Client.ReturnAsync("query-block");
        await Assert.ThrowsAsync<TimeoutException>(() => h.Client.WaitEventAsync(name, 0));
    }

    [Fact]
    public async Task Eject_refuses_a_held_device_even_forced_lets_a_follower_go_and_opens_the_tray()
    {
        await using var h = await QmpHarness.StartAsync();
        string img = h.Dir.PatternFile("a.img", 1 << 20);
        var dev = await h.AddRawAsync("d0", img, ", \"werror\": \"report\", \"rerror\": \"report\"");
        // A holder (what a block job registers) keeps the medium whatever 'force' says; a follower (an NBD
        // export) is told and lets go.
        var holder = dev.AddBlocker("block device is in use by block job: mirror");
        bool released = false;
        dev.AddBlocker("block device is in use by an NBD export", () =>
        {
            released = true;
            return ValueTask.CompletedTask;
        });

        var info = await h.QueryDeviceAsync("d0");
        Assert.True(info.GetProperty("removable").GetBoolean());
        Assert.False(info.GetProperty("tray_open").GetBoolean());

        foreach (string force in new[] { "false", "true" })
        {
            var (cls, desc) = await h.Client.ErrorAsync("eject", "{\"device\": \"d0\", \"force\": " + force + "}");
            Assert.Equal("GenericError", cls);
            Assert.Equal("Device 'd0' is busy: block device is in use by block job: mirror", desc);
        }

        Assert.False(released);
        Assert.True((await h.QueryDeviceAsync("d0")).TryGetProperty("inserted", out _));
        await dev.ReadAsync(0, new byte[512]);

        holder.Dispose();
        await h.Client.ReturnAsync("eject", "{\"device\": \"d0\"}");
        Assert.True(released);
        AssertTray(await h.Client.WaitEventAsync("DEVICE_TRAY_MOVED"), open: true);
        info = await h.QueryDeviceAsync("d0");
        Assert.True(info.GetProperty("tray_open").GetBoolean());
        Assert.False(info.TryGetProperty("inserted", out _));
        var ex = await Assert.ThrowsAsync<BlockException>(async () => await dev.ReadAsync(0, new byte[512]));
        Assert.Equal(Errno.ENOMEDIUM, ex.Errno);

        // The tray is already open: a second eject moves nothing.
        await h.Client.ReturnAsync("eject", "{\"device\": \"d0\"}");
        await AssertNoEventAsync(h, "DEVICE_TRAY_MOVED");
        Assert.Equal("DeviceNotFound", (await h.Client.ErrorAsync("eject", "{\"device\": \"nope\"}")).Class);
    }

    [Fact]
    public async Task Change_swaps_the_medium_and_moves_the_tray_out_and_in()
    {
        await using var h = await QmpHarness.StartAsync();
        string a = h.Dir.PatternFile("a.img", 1 << 20, seed: 1);
        string b = h.Dir.PatternFile("b.img", 2 << 20, seed: 2);
        var dev = await h.AddRawAsync("d0", a);

        await h.Client.ReturnAsync("change", $"{{\"device\": \"d0\", \"target\": {JsonSerializer.Serialize(b)}}}");
        AssertTray(await h.Client.WaitEventAsync("DEVICE_TRAY_MOVED"), open: true);
        AssertTray(await h.Client.WaitEventAsync("DEVICE_TRAY_MOVED"), open: false);
        var info = await h.QueryDeviceAsync("d0");
        Assert.False(info.GetProperty("tray_open").GetBoolean());
        var ins = info.GetProperty("inserted");
        Assert.Equal(b, ins.GetProperty("file").GetString());
        Assert.Equal("raw", ins.GetProperty("drv").GetString());
        Assert.Equal(2 << 20, dev.Length);
        var buf = new byte[4096];
        await dev.ReadAsync(1 << 20, buf);
        Assert.Equal(File.ReadAllBytes(b).AsSpan(1 << 20, 4096).ToArray(), buf);

        // After an eject the tray is open already: change only closes it.
        await h.Client.ReturnAsync("eject", "{\"device\": \"d0\"}");
        AssertTray(await h.Client.WaitEventAsync("DEVICE_TRAY_MOVED"), open: true);
        await h.Client.ReturnAsync("change", $"{{\"device\": \"d0\", \"target\": {JsonSerializer.Serialize(a)}, \"arg\": \"raw\"}}");
        AssertTray(await h.Client.WaitEventAsync("DEVICE_TRAY_MOVED"), open: false);
        await AssertNoEventAsync(h, "DEVICE_TRAY_MOVED");
        await dev.ReadAsync(0, buf);
        Assert.Equal(File.ReadAllBytes(a).AsSpan(0, 4096).ToArray(), buf);
        // The old medium was closed: the file is free for a writer again.
        using (File.Open(b, FileMode.Open, FileAccess.ReadWrite))
        {
        }

        Assert.Equal(("GenericError", "Invalid block format 'nope'"),
            await h.Client.ErrorAsync("change", $"{{\"device\": \"d0\", \"target\": {JsonSerializer.Serialize(b)}, \"arg\": \"nope\"}}"));
        var (_, desc) = await h.Client.ErrorAsync("change", $"{{\"device\": \"d0\", \"target\": {JsonSerializer.Serialize(h.Dir.File("missing.img"))}}}");
        Assert.Contains("No such file or directory", desc, StringComparison.Ordinal);
        using (dev.AddBlocker("device is used by NBD export 'e0'"))
        {
            Assert.Equal(("GenericError", "Device 'd0' is busy: device is used by NBD export 'e0'"),
                await h.Client.ErrorAsync("change", $"{{\"device\": \"d0\", \"target\": {JsonSerializer.Serialize(b)}}}"));
        }

        // Failed changes left the medium in place.
        Assert.Equal(a, (await h.QueryDeviceAsync("d0")).GetProperty("inserted").GetProperty("file").GetString());
    }

    [Fact]
    public async Task Block_resize_grows_a_device_through_a_filter()
    {
        await using var h = await QmpHarness.StartAsync();
        string img = h.Dir.PatternFile("a.img", 1 << 20);
        var dev = await h.AddRawAsync("d0", img, fileJson: QmpHarness.Blkdebug(img, "\"align\": 512"));
        await h.Client.ReturnAsync("block_resize", "{\"device\": \"d0\", \"size\": 3145728}");
        Assert.Equal(3 << 20, new FileInfo(img).Length);
        Assert.Equal(3 << 20, dev.Length);
        Assert.Equal(3 << 20, (await h.QueryDeviceAsync("d0")).GetProperty("inserted").GetProperty("image").GetProperty("virtual-size").GetInt64());
        await dev.WriteAsync((3 << 20) - 512, new byte[512]);
        await Assert.ThrowsAsync<BlockException>(async () => await dev.WriteAsync(3 << 20, new byte[512]));
    }
}
