using System.Text.Json;
using SharpBlock.Drivers;
using SharpBlock.Errors;
using SharpBlock.Schema;
using SharpBlock.Testing;
using static SharpBlock.Testing.QmpServerHarness;

namespace SharpBlock.Qmp.Tests.Server;

/// <summary>
/// Seed commands answered as QEMU 2.1 answers them, over a real socket: the refusals of blockdev-add, cache
/// modes, block_resize of qcow2, snapshots by node-name, throttle limits per node, eject under a job.
/// </summary>
public class SeedParityTests
{
    private static string Json(string s) => JsonSerializer.Serialize(s);

    [Fact]
    public async Task Seed_form_blockdev_add_needs_an_id_and_the_newer_form_does_not()
    {
        await using var h = Start();
        string path = h.Dir.PatternFile("disk.img", 65536);
        await using var c = await h.ConnectAsync();
        string file = $$$"""{"driver": "file", "filename": {{{Json(path)}}} }""";
        Assert.Equal(("GenericError", "Block device needs an ID"),
            await c.ErrorAsync("blockdev-add", $$$"""{"options": {"driver": "raw", "node-name": "n0", "file": {{{file}}} } }"""));
        Assert.Empty(h.Graph.Nodes);
        // Without the 'options' wrapper the client speaks newer QEMU, where a node-name alone is enough.
        await c.ReturnAsync("blockdev-add", $$$"""{"driver": "raw", "node-name": "n0", "file": {{{file}}} }""");
        Assert.NotNull(h.Graph.FindNode("n0"));
    }

    [Fact]
    public async Task Aio_native_is_refused_without_cache_direct_as_2_1_and_refused_with_its_reason_otherwise()
    {
        await using var h = Start();
        string path = h.Dir.PatternFile("disk.img", 65536);
        await using var c = await h.ConnectAsync();
        Assert.Equal(("GenericError", "aio=native requires cache.direct=true"),
            await c.ErrorAsync("blockdev-add", RawDevice("d0", path, ", \"aio\": \"native\"")));
        Assert.Equal(("GenericError", "aio=native requires cache.direct=true"),
            await c.ErrorAsync("blockdev-add", RawDevice("d0", path, ", \"aio\": \"native\", \"cache\": {\"direct\": false}")));
        Assert.Equal(("GenericError", "aio=native was specified, but it requires cache.direct=on, which was not specified."),
            await c.ErrorAsync("blockdev-add", $$$"""{"driver": "raw", "id": "d0", "aio": "native", "file": {"driver": "file", "filename": {{{Json(path)}}} } }"""));
        var (cls, desc) = await c.ErrorAsync("blockdev-add", RawDevice("d0", path, ", \"aio\": \"native\", \"cache\": {\"direct\": true}"));
        Assert.Equal("GenericError", cls);
        Assert.StartsWith("aio=native is not supported", desc, StringComparison.Ordinal);
        Assert.Empty(h.Graph.Nodes);
        await c.ReturnAsync("blockdev-add", RawDevice("d0", path, ", \"aio\": \"threads\""));
    }

    [Fact]
    public async Task Cache_writeback_false_flushes_every_write_before_it_is_acknowledged()
    {
        await using var h = Start();
        string wt = h.Dir.PatternFile("wt.img", 1 << 20), wb = h.Dir.PatternFile("wb.img", 1 << 20);
        await using var c = await h.ConnectAsync();
        // A flush that fails makes a writethrough write fail: the write was not acknowledged before the flush.
        string failingFlush = """, "inject-error": [{"event": "flush_to_os"}]""";
        await c.ReturnAsync("blockdev-add", $$$"""{"options": {"driver": "raw", "id": "wt", "werror": "report", "cache": {"writeback": false}, "file": {{{QmpHarness.Blkdebug(wt, failingFlush[2..])}}} } }""");
        await c.ReturnAsync("blockdev-add", $$$"""{"options": {"driver": "raw", "id": "wb", "werror": "report", "file": {{{QmpHarness.Blkdebug(wb, failingFlush[2..])}}} } }""");
        var ex = await Assert.ThrowsAsync<BlockException>(async () => await h.Graph.FindDevice("wt")!.WriteAsync(4096, new byte[512]));
        Assert.Equal(Errno.EIO, ex.Errno);
        await h.Graph.FindDevice("wb")!.WriteAsync(4096, new byte[512]);

        // Over a plain file every write is followed by exactly one flush of the file below.
        string plain = h.Dir.PatternFile("plain.img", 1 << 20);
        await c.ReturnAsync("blockdev-add", RawDevice("p", plain, ", \"cache\": {\"writeback\": false}"));
        var dev = h.Graph.FindDevice("p")!;
        for (int i = 0; i < 5; i++)
            await dev.WriteAsync(i * 4096, new byte[4096]);
        await dev.WriteZeroesAsync(65536, 65536);
        var stats = (await c.ReturnAsync("query-blockstats")).EnumerateArray().First(s => s.GetProperty("device").GetString() == "p");
        Assert.Equal(6, stats.GetProperty("parent").GetProperty("stats").GetProperty("flush_operations").GetInt64());
    }

    [Fact]
    public async Task Block_resize_of_qcow2_refuses_sizes_that_are_not_whole_sectors()
    {
        await using var h = Start();
        string path = h.Dir.File("disk.qcow2");
        await ImageFormats.CreateAsync(BlockdevDriver.Qcow2, path, 1 << 20);
        await using var c = await h.ConnectAsync();
        await c.ReturnAsync("blockdev-add", $$$"""{"options": {"driver": "qcow2", "id": "d0", "file": {"driver": "file", "filename": {{{Json(path)}}} } } }""");
        Assert.Equal(("GenericError", "The new size must be a multiple of 512"),
            await c.ErrorAsync("block_resize", """{"device": "d0", "size": 2097000}"""));
        Assert.Equal(1 << 20, h.Graph.FindDevice("d0")!.Length);
        await c.ReturnAsync("block_resize", """{"device": "d0", "size": 2097152}""");
        Assert.Equal(2 << 20, h.Graph.FindDevice("d0")!.Length);
    }

    [Fact]
    public async Task Blockdev_snapshot_sync_takes_the_node_name_of_a_device_root()
    {
        await using var h = Start();
        string path = h.Dir.PatternFile("base.img", 1 << 20);
        string overlay = h.Dir.File("overlay.qcow2");
        await using var c = await h.ConnectAsync();
        await c.ReturnAsync("blockdev-add", $$$"""{"options": {"driver": "raw", "id": "d0", "node-name": "root0", "file": {"driver": "file", "filename": {{{Json(path)}}}, "node-name": "proto0"} } }""");
        Assert.Equal(("GenericError", "The feature 'snapshot' is not enabled"),
            await c.ErrorAsync("blockdev-snapshot-sync", $$"""{"node-name": "proto0", "snapshot-file": {{Json(overlay)}}, "format": "qcow2"}"""));
        Assert.False(File.Exists(overlay));
        await c.ReturnAsync("blockdev-snapshot-sync", $$"""{"node-name": "root0", "snapshot-file": {{Json(overlay)}}, "snapshot-node-name": "top0", "format": "qcow2"}""");
        var inserted = (await c.ReturnAsync("query-block"))[0].GetProperty("inserted");
        Assert.Equal(overlay, inserted.GetProperty("file").GetString());
        Assert.Equal("top0", inserted.GetProperty("node-name").GetString());
        Assert.Equal(1, inserted.GetProperty("backing_file_depth").GetInt32());
        Assert.True(h.Graph.FindNode("root0")!.ReadOnly);
    }

    [Fact]
    public async Task Query_named_block_nodes_reports_the_throttle_limits_of_the_device_on_its_root()
    {
        await using var h = Start();
        string path = h.Dir.PatternFile("disk.img", 1 << 20);
        await using var c = await h.ConnectAsync();
        await c.ReturnAsync("blockdev-add", $$$"""{"options": {"driver": "raw", "id": "d0", "node-name": "root0", "file": {"driver": "file", "filename": {{{Json(path)}}}, "node-name": "proto0"} } }""");
        await c.ReturnAsync("block_set_io_throttle", """{"device": "d0", "bps": 0, "bps_rd": 4000000, "bps_wr": 2000000, "iops": 300, "iops_rd": 0, "iops_wr": 0, "iops_max": 600}""");
        var nodes = (await c.ReturnAsync("query-named-block-nodes")).EnumerateArray().ToDictionary(n => n.GetProperty("node-name").GetString()!);
        var root = nodes["root0"];
        Assert.Equal(4000000, root.GetProperty("bps_rd").GetInt64());
        Assert.Equal(2000000, root.GetProperty("bps_wr").GetInt64());
        Assert.Equal(300, root.GetProperty("iops").GetInt64());
        Assert.Equal(600, root.GetProperty("iops_max").GetInt64());
        // The limits belong to the device, which sits on its root; the file below is not throttled itself.
        Assert.Equal(0, nodes["proto0"].GetProperty("bps_rd").GetInt64());
        Assert.False(nodes["proto0"].TryGetProperty("iops_max", out _));
    }

    [Fact]
    public async Task Eject_is_refused_under_a_running_block_job_even_when_forced()
    {
        await using var h = Start();
        string path = h.Dir.PatternFile("disk.img", 1 << 20);
        string target = h.Dir.File("mirror.img");
        await using var c = await h.ConnectAsync();
        await c.ReturnAsync("blockdev-add", RawDevice("d0", path));
        await c.ReturnAsync("drive-mirror", $$"""{"device": "d0", "target": {{Json(target)}}, "sync": "full", "format": "raw"}""");
        await c.WaitEventAsync("BLOCK_JOB_READY");
        foreach (string force in new[] { "false", "true" })
        {
            Assert.Equal(("GenericError", "Device 'd0' is busy: block device is in use by block job: mirror"),
                await c.ErrorAsync("eject", $$$"""{"device": "d0", "force": {{{force}}} }"""));
        }

        Assert.Equal("mirror", (await c.ReturnAsync("query-block-jobs"))[0].GetProperty("type").GetString());
        Assert.True((await c.ReturnAsync("query-block"))[0].TryGetProperty("inserted", out _));
        await c.ReturnAsync("block-job-cancel", """{"device": "d0"}""");
        await c.WaitEventAsync("BLOCK_JOB_COMPLETED");
        await c.ReturnAsync("eject", """{"device": "d0"}""");
    }
}
