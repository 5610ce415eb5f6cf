using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Jobs;

/// <summary>blockdev-snapshot-internal-sync and its delete over QMP; qemu-img sees the same snapshot table.</summary>
public class InternalSnapshotTests
{
    [Fact]
    public async Task Create_and_delete_internal_snapshots_that_qemu_img_lists()
    {
        await using var h = QmpServerHarness.Start();
        string img = h.Dir.File("disk.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", img, "1M")).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "qcow2", "-c", "write -P 0x61 0 64k", img)).Ok();
        await using var c = await h.ConnectAsync();
        await c.ReturnAsync("blockdev-add", "{\"driver\": \"qcow2\", \"id\": \"d0\", \"file\": {\"driver\": \"file\", \"filename\": \"" + img + "\"}}");
        await c.ReturnAsync("blockdev-snapshot-internal-sync", """{"device": "d0", "name": "before"}""");
        await h.Graph.FindDevice("d0")!.WriteAsync(0, Enumerable.Repeat((byte)0x62, 4096).ToArray());
        await c.ReturnAsync("blockdev-snapshot-internal-sync", """{"device": "d0", "name": "after"}""");
        Assert.Equal(("GenericError", "Snapshot with name 'after' already exists on device 'd0'"),
            await c.ErrorAsync("blockdev-snapshot-internal-sync", """{"device": "d0", "name": "after"}"""));
        Assert.Equal(("GenericError", "Name is empty"), await c.ErrorAsync("blockdev-snapshot-internal-sync", """{"device": "d0", "name": ""}"""));
        var snaps = (await c.ReturnAsync("query-block"))[0].GetProperty("inserted").GetProperty("image").GetProperty("snapshots");
        Assert.Equal(["before", "after"], snaps.EnumerateArray().Select(s => s.GetProperty("name").GetString()!).ToArray());

        var deleted = await c.ReturnAsync("blockdev-snapshot-delete-internal-sync", """{"device": "d0", "name": "after"}""");
        Assert.Equal("after", deleted.GetProperty("name").GetString());
        Assert.Equal(("GenericError", "Name or id must be provided"), await c.ErrorAsync("blockdev-snapshot-delete-internal-sync", """{"device": "d0"}"""));
        Assert.Equal(("GenericError", "Snapshot with id '' and name 'nope' does not exist on device 'd0'"),
            await c.ErrorAsync("blockdev-snapshot-delete-internal-sync", """{"device": "d0", "name": "nope"}"""));
        await c.ReturnAsync("blockdev-del", """{"node-name": "d0"}""");

        var list = (await Tools.RunAsync("qemu-img", "snapshot", "-l", img)).Ok().Stdout;
        Assert.Contains("before", list, StringComparison.Ordinal);
        Assert.DoesNotContain("after", list, StringComparison.Ordinal);
        (await Tools.RunAsync("qemu-img", "check", img)).Ok();
        // The snapshot holds the data as it was: revert with qemu-img and read it back.
        (await Tools.RunAsync("qemu-img", "snapshot", "-a", "before", img)).Ok();
        var read = await Tools.RunAsync("qemu-io", "-f", "qcow2", "-c", "read -P 0x61 0 64k", img);
        Assert.DoesNotContain("Pattern verification failed", read.Stdout, StringComparison.Ordinal);
        read.Ok();
    }

    [Fact]
    public async Task Raw_devices_have_no_internal_snapshots()
    {
        await using var h = QmpServerHarness.Start();
        await using var c = await h.ConnectAsync();
        await c.ReturnAsync("blockdev-add", QmpServerHarness.RawDevice("d0", h.Dir.PatternFile("d.raw", 65536)));
        Assert.Equal(("GenericError", "Block format 'raw' used by device 'd0' does not support feature 'internal snapshot'"),
            await c.ErrorAsync("blockdev-snapshot-internal-sync", """{"device": "d0", "name": "s"}"""));
        Assert.Equal(("DeviceNotFound", "Device 'x' not found"), await c.ErrorAsync("blockdev-snapshot-internal-sync", """{"device": "x", "name": "s"}"""));
    }
}
