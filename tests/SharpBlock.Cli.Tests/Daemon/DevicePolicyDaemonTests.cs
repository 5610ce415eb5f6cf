using System.Text.Json;
using SharpBlock.Testing;

namespace SharpBlock.Cli.Tests.Daemon;

/// <summary>The device policy commands in a real daemon process, over its QMP socket.</summary>
public class DevicePolicyDaemonTests
{
    [Fact]
    public async Task Throttle_eject_change_and_cont_work_in_the_daemon()
    {
        using var dir = new TempDir();
        string img = dir.PatternFile("a.img", 1 << 20);
        string other = dir.PatternFile("b.img", 2 << 20);
        string cfg = dir.File("rules.cfg");
        File.WriteAllText(cfg, "[inject-error]\nevent = \"write_aio\"\nonce = \"on\"\n");
        string sock = dir.File("qmp.sock");
        string blockdev = $"{{\"driver\": \"raw\", \"id\": \"d0\", \"werror\": \"stop\", \"file\": {{\"driver\": \"blkdebug\", " +
            $"\"config\": {JsonSerializer.Serialize(cfg)}, \"image\": {{\"driver\": \"file\", \"filename\": {JsonSerializer.Serialize(img)}}}}}}}";
        using var daemon = Tools.StartSharpBlock("daemon", "--qmp", "unix:" + sock, "--blockdev", blockdev);
        try
        {
            await SocketWait.ForListenerAsync(sock);
            await using var c = await QmpTestClient.ConnectUnixAsync(sock);

            var names = new HashSet<string>();
            foreach (var cmd in (await c.ReturnAsync("query-commands")).EnumerateArray())
                names.Add(cmd.GetProperty("name").GetString()!);
            Assert.Subset(names, new HashSet<string> { "cont", "change", "eject", "block_set_io_throttle" });

            await c.ReturnAsync("block_set_io_throttle",
                "{\"device\": \"d0\", \"bps\": 0, \"bps_rd\": 1048576, \"bps_wr\": 0, \"iops\": 100, \"iops_rd\": 0, \"iops_wr\": 0, \"iops_max\": 200}");
            var d0 = (await c.ReturnAsync("query-block"))[0];
            Assert.Equal("ok", d0.GetProperty("io-status").GetString());
            var ins = d0.GetProperty("inserted");
            Assert.Equal(1048576, ins.GetProperty("bps_rd").GetInt64());
            Assert.Equal(100, ins.GetProperty("iops").GetInt64());
            Assert.Equal(200, ins.GetProperty("iops_max").GetInt64());
            Assert.Equal("raw", ins.GetProperty("drv").GetString());
            Assert.Equal(img, ins.GetProperty("file").GetString());

            await c.ReturnAsync("cont");
            await c.ReturnAsync("eject", "{\"device\": \"d0\"}");
            Assert.True((await c.WaitEventAsync("DEVICE_TRAY_MOVED")).GetProperty("data").GetProperty("tray-open").GetBoolean());
            await c.ReturnAsync("change", $"{{\"device\": \"d0\", \"target\": {JsonSerializer.Serialize(other)}}}");
            Assert.False((await c.WaitEventAsync("DEVICE_TRAY_MOVED")).GetProperty("data").GetProperty("tray-open").GetBoolean());
            d0 = (await c.ReturnAsync("query-block"))[0];
            Assert.False(d0.GetProperty("tray_open").GetBoolean());
            Assert.Equal(other, d0.GetProperty("inserted").GetProperty("file").GetString());
            // Limits belong to the device and survive the change of medium.
            Assert.Equal(1048576, d0.GetProperty("inserted").GetProperty("bps_rd").GetInt64());

            await c.ReturnAsync("quit");
            Assert.True(daemon.WaitForExit(20000), "the daemon did not exit after quit");
            Assert.Equal(0, daemon.ExitCode);
        }
        finally
        {
            if (!daemon.HasExited)
                daemon.Kill();
        }
    }
}
