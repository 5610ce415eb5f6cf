using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Vdi;

/// <summary>vdi and vpc nodes in the daemon: blockdev-add opens them, query-block shows what qemu-img info shows, and an NBD export serves their content.</summary>
public class VdiVpcQmpTests
{
    [Fact]
    public async Task Blockdev_add_opens_both_formats_and_nbd_serves_them()
    {
        using var dir = new TempDir();
        string vdi = dir.File("d.vdi"), vpc = dir.File("d.vpc");
        (await Tools.RunAsync("qemu-img", "create", "-f", "vdi", vdi, "4M")).Ok();
        (await Tools.RunAsync("qemu-img", "create", "-f", "vpc", "-o", "force_size=on", vpc, "4M")).Ok();
        (await ImageInteropChecks.QemuIoAsync("vdi", vdi, "write -P 0x61 1M 64k")).Ok();
        (await ImageInteropChecks.QemuIoAsync("vpc", vpc, "write -P 0x62 3M 64k")).Ok();
        string sock = dir.File("q.sock");
        using var p = Tools.StartSharpBlock("daemon", "--qmp", $"unix:{sock},server=on,wait=off");
        try
        {
            await SocketWait.ForListenerAsync(sock);
            await using var qmp = await QmpTestClient.ConnectUnixAsync(sock);
            await qmp.ReturnAsync("blockdev-add", $$$$"""{"options": {"driver": "vdi", "id": "d0", "file": {"driver": "file", "filename": "{{{{vdi}}}}"}}}""");
            await qmp.ReturnAsync("blockdev-add", $$$$"""{"options": {"driver": "vpc", "id": "d1", "file": {"driver": "file", "filename": "{{{{vpc}}}}"}}}""");
            var blocks = await qmp.ReturnAsync("query-block");
            var first = blocks[0].GetProperty("inserted");
            Assert.Equal("vdi", first.GetProperty("drv").GetString());
            Assert.Equal(1 << 20, first.GetProperty("image").GetProperty("cluster-size").GetInt32());
            var second = blocks[1].GetProperty("inserted");
            Assert.Equal("vpc", second.GetProperty("drv").GetString());
            Assert.Equal(4 << 20, second.GetProperty("image").GetProperty("virtual-size").GetInt64());
            Assert.Equal(2 << 20, second.GetProperty("image").GetProperty("cluster-size").GetInt32());

            string nbd = dir.File("n.sock");
            await qmp.ReturnAsync("nbd-server-start", $$$$"""{"addr": {"type": "unix", "data": {"path": "{{{{nbd}}}}"}}}""");
            await qmp.ReturnAsync("nbd-server-add", """{"device": "d0"}""");
            await qmp.ReturnAsync("nbd-server-add", """{"device": "d1"}""");
            var a = (await Tools.RunAsync("qemu-io", "-r", "-f", "raw", "-c", "read -P 0x61 1M 64k", "-c", "read -P 0 0 1M", $"nbd+unix:///d0?socket={nbd}")).Ok();
            Assert.DoesNotContain("Pattern verification failed", a.Stdout, StringComparison.Ordinal);
            var b = (await Tools.RunAsync("qemu-io", "-r", "-f", "raw", "-c", "read -P 0x62 3M 64k", $"nbd+unix:///d1?socket={nbd}")).Ok();
            Assert.DoesNotContain("Pattern verification failed", b.Stdout, StringComparison.Ordinal);
        }
        finally
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
        }
    }
}
