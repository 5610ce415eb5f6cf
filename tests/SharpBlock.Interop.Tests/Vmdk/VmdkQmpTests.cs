using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Vmdk;

/// <summary>vmdk nodes in the daemon: blockdev-add opens the extents a descriptor names and the parent it hints at.</summary>
public class VmdkQmpTests
{
    [Fact]
    public async Task Blockdev_add_opens_a_chain_and_a_split_image_and_query_block_shows_them()
    {
        using var dir = new TempDir();
        (await Tools.RunAsync("qemu-img", "create", "-f", "vmdk", dir.File("b.vmdk"), "4M")).Ok();
        (await Tools.RunAsync("qemu-img", "create", "-f", "vmdk", "-b", "b.vmdk", "-F", "vmdk", dir.File("t.vmdk"))).Ok();
        (await Tools.RunAsync("qemu-img", "create", "-f", "vmdk", "-o", "subformat=twoGbMaxExtentFlat", dir.File("f.vmdk"), "3M")).Ok();
        string sock = dir.File("q.sock");
        using var p = Tools.StartSharpBlock("daemon", "--qmp", $"unix:{sock},server=on,wait=off");
        try
        {
            await SocketWait.ForListenerAsync(sock);
            await using var qmp = await QmpTestClient.ConnectUnixAsync(sock);
            await qmp.ReturnAsync("blockdev-add", $$$$"""{"options": {"driver": "vmdk", "id": "d0", "file": {"driver": "file", "filename": "{{{{dir.File("t.vmdk")}}}}"}}}""");
            await qmp.ReturnAsync("blockdev-add", $$$$"""{"options": {"driver": "vmdk", "id": "d1", "file": {"driver": "file", "filename": "{{{{dir.File("f.vmdk")}}}}"}}}""");
            var blocks = await qmp.ReturnAsync("query-block");
            var inserted = blocks[0].GetProperty("inserted");
            Assert.Equal("vmdk", inserted.GetProperty("drv").GetString());
            Assert.Equal("b.vmdk", inserted.GetProperty("backing_file").GetString());
            Assert.Equal(1, inserted.GetProperty("backing_file_depth").GetInt32());
            var image = inserted.GetProperty("image");
            Assert.Equal("vmdk", image.GetProperty("format-specific").GetProperty("type").GetString());
            Assert.Equal("vmdk", image.GetProperty("backing-image").GetProperty("format").GetString());
            var flat = blocks[1].GetProperty("inserted").GetProperty("image");
            Assert.Equal(3 << 20, flat.GetProperty("virtual-size").GetInt64());
            Assert.Equal("twoGbMaxExtentFlat", flat.GetProperty("format-specific").GetProperty("data").GetProperty("create-type").GetString());
        }
        finally
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
        }
    }
}
