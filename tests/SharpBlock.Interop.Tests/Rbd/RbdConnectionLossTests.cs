using System.Text.Json;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Rbd;

/// <summary>
/// A Ceph cluster that goes away under a running device: the OSD is killed while a raw-over-rbd device is
/// exported over NBD. The guest's next write fails with EIO under the device's error policy (BLOCK_IO_ERROR,
/// the NBD client sees the error) within the client's OSD timeout, not a hang, and the daemon goes on serving
/// its other devices. A cluster of its own: the OSD does not come back.
/// </summary>
public sealed class RbdConnectionLossTests(CephCluster ceph) : IClassFixture<CephCluster>
{
    [Fact]
    public async Task Osd_killed_under_a_device_gives_eio_under_the_error_policy_and_the_daemon_keeps_serving()
    {
        // Short timeouts so the test does not wait librados' default 20 s (set here as a user would).
        ceph.Configure("rados osd op timeout = 4");
        (await ceph.RbdAsync("create", "--size", "4", "rbd/lost")).Ok();
        await using var h = await QmpHarness.StartAsync();
        var c = h.Client;
        await c.ReturnAsync("blockdev-add", """{"options": {"driver": "raw", "id": "d0", "werror": "report", "file": {"driver": "rbd", "pool": "rbd", "image": "lost", "conf": """ + JsonSerializer.Serialize(ceph.Conf) + "}}}");
        string local = h.Dir.PatternFile("local.raw", 1 << 20, seed: 3);
        await h.AddRawAsync("d1", local);
        await h.StartNbdAsync();
        await c.ReturnAsync("nbd-server-add", """{"device": "d0", "writable": true}""");
        await c.ReturnAsync("nbd-server-add", """{"device": "d1"}""");
        string url = $"nbd+unix:///d0?socket={h.NbdSocket}";
        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 5 0 64k", url)).Ok();

        ceph.KillOsd();
        var started = DateTime.UtcNow;
        var r = await Tools.RunAsync("qemu-io", ["-f", "raw", "-c", "write -P 6 1M 64k", url], timeoutMs: 60_000);
        var took = DateTime.UtcNow - started;
        Assert.Contains("write failed: Input/output error", r.Stdout + r.Stderr, StringComparison.Ordinal);
        Assert.True(took < TimeSpan.FromSeconds(30), $"the write took {took.TotalSeconds:F1} s");

        var ev = await c.WaitEventAsync("BLOCK_IO_ERROR");
        var data = ev.GetProperty("data");
        Assert.Equal("d0", data.GetProperty("device").GetString());
        Assert.Equal("write", data.GetProperty("operation").GetString());
        Assert.Equal("report", data.GetProperty("action").GetString());

        // The daemon still answers, and its other export still serves what its file holds.
        Assert.Equal(2, (await c.ReturnAsync("query-block")).GetArrayLength());
        string copy = h.Dir.File("copy.raw");
        (await Tools.RunAsync("nbdcopy", $"nbd+unix:///d1?socket={h.NbdSocket}", copy)).Ok();
        Assert.Equal(File.ReadAllBytes(local), File.ReadAllBytes(copy));
    }
}
