using SharpBlock.Interop.Tests.Vdi;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Qed;

/// <summary>qed nodes in the daemon: blockdev-add opens one with its backing chain, query-block shows it, and an NBD export serves the merged content.</summary>
public class QedQmpTests
{
    [Fact]
    public async Task Blockdev_add_opens_a_backed_qed_image_and_nbd_serves_it()
    {
        using var dir = new TempDir();
        string bas = dir.File("base.qed"), top = dir.File("top.qed");
        (await Tools.RunAsync("qemu-img", "create", "-f", "qed", bas, "4M")).Ok();
        (await ImageInteropChecks.QemuIoAsync("qed", bas, "write -P 0x61 1M 64k")).Ok();
        (await Tools.RunAsync("qemu-img", "create", "-f", "qed", "-b", bas, "-F", "qed", top)).Ok();
        (await ImageInteropChecks.QemuIoAsync("qed", top, "write -P 0x62 3M 64k")).Ok();
        string sock = dir.File("q.sock");
        using var p = Tools.StartSharpBlock("daemon", "--qmp", $"unix:{sock},server=on,wait=off");
        try
        {
            await SocketWait.ForListenerAsync(sock);
            await using var qmp = await QmpTestClient.ConnectUnixAsync(sock);
            await qmp.ReturnAsync("blockdev-add", $$$$"""{"options": {"driver": "qed", "id": "d0", "file": {"driver": "file", "filename": "{{{{top}}}}"}}}""");
            var blocks = await qmp.ReturnAsync("query-block");
            var first = blocks[0].GetProperty("inserted");
            Assert.Equal("qed", first.GetProperty("drv").GetString());
            Assert.Equal(65536, first.GetProperty("image").GetProperty("cluster-size").GetInt32());
            Assert.Equal(bas, first.GetProperty("image").GetProperty("backing-filename").GetString());

            string nbd = dir.File("n.sock");
            await qmp.ReturnAsync("nbd-server-start", $$$$"""{"addr": {"type": "unix", "data": {"path": "{{{{nbd}}}}"}}}""");
            await qmp.ReturnAsync("nbd-server-add", """{"device": "d0"}""");
            var a = (await Tools.RunAsync("qemu-io", "-r", "-f", "raw", "-c", "read -P 0x61 1M 64k", "-c", "read -P 0x62 3M 64k", "-c", "read -P 0 0 1M", $"nbd+unix:///d0?socket={nbd}")).Ok();
            Assert.DoesNotContain("Pattern verification failed", a.Stdout, StringComparison.Ordinal);
        }
        finally
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
        }
    }
}
