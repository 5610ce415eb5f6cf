using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Vhdx;

/// <summary>vhdx nodes in the daemon: blockdev-add opens them, query-block describes them, and an image with a log to replay is refused read-only.</summary>
public class VhdxQmpTests
{
    [Fact]
    public async Task Blockdev_add_opens_a_vhdx_image_and_refuses_a_read_only_one_with_a_log()
    {
        using var dir = new TempDir();
        string img = dir.File("d.vhdx"), dirty = dir.File("dirty.vhdx");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "vhdx", "-o", "block_size=2M", img, "16M")).Ok();
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "vhdx", "-o", "block_size=1M", dirty, "16M")).Ok();
        VhdxLogCrafter.LeaveReplayableLog(dirty);
        string sock = dir.File("q.sock");
        using var p = Tools.StartSharpBlock("daemon", "--qmp", $"unix:{sock},server=on,wait=off");
        try
        {
            await SocketWait.ForListenerAsync(sock);
            await using var qmp = await QmpTestClient.ConnectUnixAsync(sock);
            await qmp.ReturnAsync("blockdev-add", $$$$"""{"options": {"driver": "vhdx", "id": "d0", "file": {"driver": "file", "filename": "{{{{img}}}}"}}}""");
            var blocks = await qmp.ReturnAsync("query-block");
            var inserted = blocks[0].GetProperty("inserted");
            Assert.Equal("vhdx", inserted.GetProperty("drv").GetString());
            var image = inserted.GetProperty("image");
            Assert.Equal(2 << 20, image.GetProperty("cluster-size").GetInt32());
            Assert.Equal(16 << 20, image.GetProperty("virtual-size").GetInt64());

            var (cls, desc) = await qmp.ErrorAsync("blockdev-add", $$$$"""{"driver": "vhdx", "node-name": "n1", "read-only": true, "file": {"driver": "file", "filename": "{{{{dirty}}}}"}}""");
            Assert.Equal("GenericError", cls);
            Assert.Contains("contains a log that needs to be replayed", desc, StringComparison.Ordinal);
        }
        finally
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
        }
    }
}
