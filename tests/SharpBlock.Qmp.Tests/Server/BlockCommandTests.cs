using static SharpBlock.Testing.QmpServerHarness;

namespace SharpBlock.Qmp.Tests.Server;

/// <summary>The block commands of the foundation, each success and error path, over a real socket.</summary>
public class BlockCommandTests
{
    [Fact]
    public async Task Blockdev_add_makes_a_device_that_query_block_describes()
    {
        await using var h = Start();
        string path = h.Dir.PatternFile("disk.img", 1 << 20);
        await using var c = await h.ConnectAsync();
        await c.ReturnAsync("blockdev-add", RawDevice("disk0", path));
        var info = (await c.ReturnAsync("query-block"))[0];
        Assert.Equal("disk0", info.GetProperty("device").GetString());
        Assert.Equal("unknown", info.GetProperty("type").GetString());
        Assert.True(info.GetProperty("removable").GetBoolean());
        Assert.False(info.GetProperty("locked").GetBoolean());
        var ins = info.GetProperty("inserted");
        Assert.Equal(path, ins.GetProperty("file").GetString());
        Assert.Equal("raw", ins.GetProperty("drv").GetString());
        Assert.False(ins.GetProperty("ro").GetBoolean());
        Assert.Equal(0, ins.GetProperty("backing_file_depth").GetInt32());
        Assert.Equal("off", ins.GetProperty("detect_zeroes").GetString());
        Assert.False(ins.GetProperty("encryption_key_missing").GetBoolean());
        var image = ins.GetProperty("image");
        Assert.Equal(path, image.GetProperty("filename").GetString());
        Assert.Equal("raw", image.GetProperty("format").GetString());
        Assert.Equal(1 << 20, image.GetProperty("virtual-size").GetInt64());
        Assert.True(image.GetProperty("actual-size").GetInt64() >= 1 << 20);
    }

    [Fact]
    public async Task Blockdev_add_accepts_the_newer_unwrapped_form_and_node_names()
    {
        await using var h = Start();
        string path = h.Dir.PatternFile("disk.img", 65536);
        await using var c = await h.ConnectAsync();
        await c.ReturnAsync("blockdev-add", $$$"""{"driver": "raw", "node-name": "fmt0", "read-only": true, "file": {"driver": "file", "filename": "{{{path}}}", "node-name": "proto0"}}""");
        var nodes = await c.ReturnAsync("query-named-block-nodes");
        Assert.Equal(["proto0", "fmt0"], nodes.EnumerateArray().Select(n => n.GetProperty("node-name").GetString()!).ToArray());
        Assert.All(nodes.EnumerateArray(), n => Assert.True(n.GetProperty("ro").GetBoolean()));
        Assert.Equal("file", nodes[0].GetProperty("drv").GetString());
        Assert.Empty((await c.ReturnAsync("query-block")).EnumerateArray());
    }

    [Theory]
    [InlineData("""{"options": {"driver": "raw", "id": "d", "file": {"driver": "file"}}}""", "Parameter 'options.file.filename' is missing")]
    [InlineData("""{"options": {"driver": "raw", "id": "d", "file": {"driver": "file", "filename": 5}}}""", "Invalid parameter type for 'options.file.filename', expected: string")]
    [InlineData("""{"options": {"driver": "raw", "id": "d", "aio": "bad", "file": "x"}}""", "Parameter 'aio' does not accept value 'bad'")]
    [InlineData("""{"options": {"driver": "nosuch", "id": "d"}}""", "Parameter 'driver' does not accept value 'nosuch'")]
    [InlineData("""{"options": {"driver": "raw", "id": "d", "file": "x", "bogus": 1}}""", "Parameter 'options.bogus' is unexpected")]
    [InlineData("""{"options": {"driver": "raw", "id": "d", "file": "x", "cache": {"direct": "yes"}}}""", "Invalid parameter type for 'options.cache.direct', expected: boolean")]
    [InlineData("""{"options": {"driver": "raw", "id": "d", "file": ["x"]}}""", "Invalid parameter type for 'options.file', expected: BlockdevRef")]
    [InlineData("""{"options": {"driver": "raw", "id": "d", "file": "nosuchnode"}}""", "Cannot find device='nosuchnode' nor node-name='nosuchnode'")]
    [InlineData("""{"options": {"driver": "raw", "id": "d", "file": {"driver": "file", "filename": "/nonexistent/x"}}}""", "Could not open '/nonexistent/x': No such file or directory")]
    [InlineData("""{"options": {"driver": "host_cdrom", "id": "d", "filename": "/dev/nosuch-cd"}}""", "Could not open '/dev/nosuch-cd': No such file or directory")]
    [InlineData("""{"options": {"driver": "raw", "file": "x"}}""", "Block device needs an ID")]
    [InlineData("""{"driver": "raw", "file": "x"}""", "Block device needs an 'id' or a 'node-name'")]
    [InlineData("""{}""", "Parameter 'driver' is missing")]
    public async Task Blockdev_add_errors_name_the_parameter(string args, string desc)
    {
        await using var h = Start();
        await using var c = await h.ConnectAsync();
        Assert.Equal(("GenericError", desc), await c.ErrorAsync("blockdev-add", args));
        Assert.Empty(h.Graph.Nodes);
    }

    [Fact]
    public async Task Adding_the_same_image_twice_read_write_fails_on_the_image_lock()
    {
        await using var h = Start();
        string path = h.Dir.PatternFile("disk.img", 65536);
        await using var c = await h.ConnectAsync();
        await c.ReturnAsync("blockdev-add", RawDevice("a", path));
        Assert.Equal(("GenericError", "Failed to get \"write\" lock"), await c.ErrorAsync("blockdev-add", RawDevice("b", path)));
        Assert.Equal(("GenericError", "Device with id 'a' already exists"), await c.ErrorAsync("blockdev-add", RawDevice("a", h.Dir.PatternFile("b.img", 512))));
    }

    [Fact]
    public async Task Block_resize_changes_the_device_and_the_file()
    {
        await using var h = Start();
        string path = h.Dir.PatternFile("disk.img", 1 << 20);
        await using var c = await h.ConnectAsync();
        await c.ReturnAsync("blockdev-add", RawDevice("d0", path));
        await c.ReturnAsync("block_resize", """{"device": "d0", "size": 3145728}""");
        Assert.Equal(3145728, new FileInfo(path).Length);
        var image = (await c.ReturnAsync("query-block"))[0].GetProperty("inserted").GetProperty("image");
        Assert.Equal(3145728, image.GetProperty("virtual-size").GetInt64());
        string node = h.Graph.FindDevice("d0")!.Root!.NodeName;
        await c.ReturnAsync("block_resize", $$"""{"node-name": "{{node}}", "size": 65536}""");
        Assert.Equal(65536, new FileInfo(path).Length);
    }

    [Theory]
    [InlineData("""{"device": "nope", "size": 1}""", "DeviceNotFound", "Device 'nope' not found")]
    [InlineData("""{"node-name": "nope", "size": 1}""", "GenericError", "Cannot find device='' nor node-name='nope'")]
    [InlineData("""{"size": 1}""", "GenericError", "One of 'device' and 'node-name' must be given")]
    [InlineData("""{"device": "d0", "size": -1}""", "GenericError", "Parameter 'size' expects a >0 size")]
    [InlineData("""{"device": "d0", "size": "big"}""", "GenericError", "Invalid parameter type for 'size', expected: integer")]
    [InlineData("""{"device": "d0"}""", "GenericError", "Parameter 'size' is missing")]
    public async Task Block_resize_errors(string args, string cls, string desc)
    {
        await using var h = Start();
        await using var c = await h.ConnectAsync();
        await c.ReturnAsync("blockdev-add", RawDevice("d0", h.Dir.PatternFile("disk.img", 4096)));
        Assert.Equal((cls, desc), await c.ErrorAsync("block_resize", args));
    }

    [Fact]
    public async Task Block_resize_of_a_read_only_device_is_refused()
    {
        await using var h = Start();
        await using var c = await h.ConnectAsync();
        await c.ReturnAsync("blockdev-add", RawDevice("d0", h.Dir.PatternFile("disk.img", 4096), ", \"read-only\": true"));
        Assert.Equal(("GenericError", "Device 'd0' is read only"), await c.ErrorAsync("block_resize", """{"device": "d0", "size": 8192}"""));
    }

    [Fact]
    public async Task Query_blockstats_reports_live_counters_of_device_and_file()
    {
        await using var h = Start();
        await using var c = await h.ConnectAsync();
        await c.ReturnAsync("blockdev-add", RawDevice("d0", h.Dir.PatternFile("disk.img", 1 << 20)));
        var dev = h.Graph.FindDevice("d0")!;
        await dev.WriteAsync(65536, new byte[8192]);
        await dev.ReadAsync(0, new byte[4096]);
        await dev.ReadAsync(4096, new byte[4096]);
        await dev.FlushAsync();
        var s = (await c.ReturnAsync("query-blockstats"))[0];
        Assert.Equal("d0", s.GetProperty("device").GetString());
        var st = s.GetProperty("stats");
        Assert.Equal(8192, st.GetProperty("wr_bytes").GetInt64());
        Assert.Equal(8192, st.GetProperty("rd_bytes").GetInt64());
        Assert.Equal(2, st.GetProperty("rd_operations").GetInt64());
        Assert.Equal(1, st.GetProperty("wr_operations").GetInt64());
        Assert.Equal(1, st.GetProperty("flush_operations").GetInt64());
        Assert.Equal(65536 + 8192, st.GetProperty("wr_highest_offset").GetInt64());
        Assert.True(st.GetProperty("wr_total_time_ns").GetInt64() > 0);
        Assert.True(st.GetProperty("rd_total_time_ns").GetInt64() > 0);
        Assert.True(st.GetProperty("flush_total_time_ns").GetInt64() > 0);
        var parent = s.GetProperty("parent").GetProperty("stats");
        Assert.Equal(8192, parent.GetProperty("wr_bytes").GetInt64());
    }

    [Fact]
    public async Task Eject_removes_the_medium()
    {
        await using var h = Start();
        await using var c = await h.ConnectAsync();
        await c.ReturnAsync("blockdev-add", RawDevice("d0", h.Dir.PatternFile("disk.img", 4096)));
        await c.ReturnAsync("eject", """{"device": "d0"}""");
        var info = (await c.ReturnAsync("query-block"))[0];
        Assert.False(info.TryGetProperty("inserted", out _));
        // Ejecting an empty drive succeeds, as the schema says.
        await c.ReturnAsync("eject", """{"device": "d0", "force": true}""");
        Assert.Equal(("DeviceNotFound", "Device 'x' not found"), await c.ErrorAsync("eject", """{"device": "x"}"""));
    }

    [Fact]
    public async Task Block_passwd_on_an_unencrypted_device_is_a_clear_error()
    {
        await using var h = Start();
        await using var c = await h.ConnectAsync();
        await c.ReturnAsync("blockdev-add", RawDevice("d0", h.Dir.PatternFile("disk.img", 4096)));
        Assert.Equal(("GenericError", "Device 'd0' is not encrypted"), await c.ErrorAsync("block_passwd", """{"device": "d0", "password": "x"}"""));
        Assert.Equal(("DeviceNotFound", "Device 'x' not found"), await c.ErrorAsync("block_passwd", """{"device": "x", "password": "x"}"""));
        Assert.Equal(("GenericError", "Parameter 'password' is missing"), await c.ErrorAsync("block_passwd", """{"device": "d0"}"""));
    }

    [Fact]
    public async Task Query_block_jobs_is_empty_without_jobs()
    {
        await using var h = Start();
        await using var c = await h.ConnectAsync();
        Assert.Equal(0, (await c.ReturnAsync("query-block-jobs")).GetArrayLength());
    }

    [Fact]
    public async Task Blockdev_del_removes_devices_and_unused_nodes()
    {
        await using var h = Start();
        await using var c = await h.ConnectAsync();
        string path = h.Dir.PatternFile("disk.img", 4096);
        await c.ReturnAsync("blockdev-add", RawDevice("d0", path));
        await c.ReturnAsync("blockdev-del", """{"node-name": "d0"}""");
        Assert.Empty((await c.ReturnAsync("query-block")).EnumerateArray());
        Assert.Equal(("GenericError", "Failed to find node with node-name='d0'"), await c.ErrorAsync("blockdev-del", """{"node-name": "d0"}"""));
        // The image lock went with it.
        await c.ReturnAsync("blockdev-add", RawDevice("d1", path));
    }
}
