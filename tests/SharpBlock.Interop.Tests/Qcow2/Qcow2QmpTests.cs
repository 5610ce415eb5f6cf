using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Qcow2;

/// <summary>qcow2 nodes in the daemon: blockdev-add opens the backing chain named in the header.</summary>
public class Qcow2QmpTests
{
    [Fact]
    public async Task Query_block_shows_the_backing_chain()
    {
        using var dir = new TempDir();
        (await Tools.RunAsync("qemu-img", "create", "-f", "qcow2", dir.File("b.qcow2"), "4M")).Ok();
        (await Tools.RunAsync("qemu-img", "create", "-f", "qcow2", "-b", "b.qcow2", "-F", "qcow2", dir.File("t.qcow2"))).Ok();
        (await Tools.RunAsync("qemu-img", "create", "-f", "qcow2", "-b", "b.qcow2", "-F", "qcow2", dir.File("t2.qcow2"))).Ok();
        string sock = dir.File("q.sock");
        using var p = Tools.StartSharpBlock("daemon", "--qmp", $"unix:{sock},server=on,wait=off");
        try
        {
            await SocketWait.ForListenerAsync(sock);
            await using var qmp = await QmpTestClient.ConnectUnixAsync(sock);
            await qmp.ReturnAsync("blockdev-add", $$$$"""{"options": {"driver": "qcow2", "id": "d0", "file": {"driver": "file", "filename": "{{{{dir.File("t.qcow2")}}}}"}}}""");
            var blocks = await qmp.ReturnAsync("query-block");
            var inserted = blocks[0].GetProperty("inserted");
            Assert.Equal("qcow2", inserted.GetProperty("drv").GetString());
            Assert.Equal("b.qcow2", inserted.GetProperty("backing_file").GetString());
            Assert.Equal(1, inserted.GetProperty("backing_file_depth").GetInt32());
            var image = inserted.GetProperty("image");
            Assert.Equal(65536, image.GetProperty("cluster-size").GetInt32());
            Assert.Equal("qcow2", image.GetProperty("backing-image").GetProperty("format").GetString());

            // An empty reference means "no backing file", whatever the header says.
            await qmp.ReturnAsync("blockdev-add", $$$$"""{"driver": "qcow2", "node-name": "n1", "backing": "", "read-only": true, "file": {"driver": "file", "filename": "{{{{dir.File("t2.qcow2")}}}}"}}""");
            var nodes = await qmp.ReturnAsync("query-named-block-nodes");
            foreach (var n in nodes.EnumerateArray())
            {
                if (n.GetProperty("node-name").GetString() == "n1")
                    Assert.Equal(0, n.GetProperty("backing_file_depth").GetInt32());
            }
        }
        finally
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
        }
    }
}
