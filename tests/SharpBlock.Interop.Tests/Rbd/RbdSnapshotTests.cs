using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Rbd;

/// <summary>
/// rbd snapshots as internal snapshots: img snapshot and img info on raw over rbd against qemu-img's rbd driver and
/// Ceph's rbd tool, a snapshot read through us, and the QMP internal-snapshot commands on a raw-over-rbd device.
/// </summary>
public sealed class RbdSnapshotTests(CephCluster ceph) : IClassFixture<CephCluster>, IDisposable
{
    private readonly TempDir _tmp = new();

    public void Dispose() => _tmp.Dispose();

    private static async Task<string> StdoutAsync(params string[] args) => (await Tools.RunAsync(args[0], args[1..])).Ok().Stdout;

    [Fact]
    public async Task ImgSnapshot_ListCreateApplyDelete_AsQemuImg()
    {
        string n = ceph.Name("snaps");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "raw", n, "16M")).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 0x11 0 1M", n)).Ok();
        // A snapshot made by Ceph's own tool is listed by us as by qemu-img.
        (await ceph.RbdAsync("snap", "create", "rbd/snaps@byceph")).Ok();
        (await Tools.RunAsync("sharpblock", "img", "snapshot", "-c", "byus", "-f", "raw", n)).Ok();
        Assert.Contains("byus", (await ceph.RbdAsync("snap", "ls", "rbd/snaps")).Ok().Stdout, StringComparison.Ordinal);
        string ours = await StdoutAsync("sharpblock", "img", "snapshot", "-l", "-f", "raw", n);
        Assert.Equal(await StdoutAsync("qemu-img", "snapshot", "-l", n), ours);
        Assert.Contains("byceph    byceph             16 MiB 1970-01-01 00:00:00 00:00:00.000          0\n", ours, StringComparison.Ordinal);

        var dup = await Tools.RunAsync("sharpblock", "img", "snapshot", "-c", "byus", "-f", "raw", n);
        Assert.Equal("Could not create snapshot 'byus': -17 (File exists)", dup.OneLineError());
        Assert.Equal("Could not delete snapshot 'nosuch': snapshot not found",
            (await Tools.RunAsync("sharpblock", "img", "snapshot", "-d", "nosuch", "-f", "raw", n)).OneLineError());

        // -a rolls back: the write after the snapshot is gone.
        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 0x22 0 1M", n)).Ok();
        (await Tools.RunAsync("sharpblock", "img", "snapshot", "-a", "byus", "-f", "raw", n)).Ok();
        var read = (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "read -P 0x11 0 1M", n)).Ok();
        Assert.DoesNotContain("Pattern verification failed", read.Stdout, StringComparison.Ordinal);

        (await Tools.RunAsync("sharpblock", "img", "snapshot", "-d", "byus", "-f", "raw", n)).Ok();
        Assert.DoesNotContain("byus", (await ceph.RbdAsync("snap", "ls", "rbd/snaps")).Ok().Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SnapshotMadeByCeph_ReadThroughUs()
    {
        string n = ceph.Name("readsnap");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "raw", n, "8M")).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 0x33 0 2M", n)).Ok();
        (await ceph.RbdAsync("snap", "create", "rbd/readsnap@old")).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 0x44 0 2M", n)).Ok();
        string exported = _tmp.File("old.raw");
        (await ceph.RbdAsync("export", "rbd/readsnap@old", exported)).Ok();
        string back = _tmp.File("back.raw");
        (await Tools.RunAsync("sharpblock", "img", "convert", "-f", "raw", "-O", "raw", $"rbd:rbd/readsnap@old:conf={ceph.Conf}", back)).Ok();
        Assert.Equal(await File.ReadAllBytesAsync(exported), await File.ReadAllBytesAsync(back));
        // The same through blockdev options (the snapshot member).
        string opts = "json:{\"driver\": \"raw\", \"file\": {\"driver\": \"rbd\", \"pool\": \"rbd\", \"image\": \"readsnap\", \"snapshot\": \"old\", \"conf\": \"" + ceph.Conf + "\"}}";
        (await Tools.RunAsync("sharpblock", "img", "compare", "-F", "raw", opts, exported)).Ok();
    }

    [Fact]
    public async Task ImgInfo_ClusterSizeDirtyFlagAndSnapshots_AsQemuImg()
    {
        string n = ceph.Name("info");
        (await ceph.RbdAsync("create", "--size", "12M", "--object-size", "1M", "rbd/info")).Ok();
        (await ceph.RbdAsync("snap", "create", "rbd/info@one")).Ok();
        string ours = await StdoutAsync("sharpblock", "img", "info", "-f", "raw", n);
        string theirs = await StdoutAsync("qemu-img", "info", "-f", "raw", n);
        // The filename line differs (qemu-img shows a json: name), everything after it is the same.
        Assert.Equal(theirs[theirs.IndexOf('\n')..], ours[ours.IndexOf('\n')..]);
        Assert.Contains("cluster_size: 1048576\n", ours, StringComparison.Ordinal);
        string json = await StdoutAsync("sharpblock", "img", "info", "--output=json", "-f", "raw", n);
        Assert.Contains("\"cluster-size\": 1048576", json, StringComparison.Ordinal);
        Assert.Contains("\"dirty-flag\": false", json, StringComparison.Ordinal);
        Assert.Contains("\"vm-state-size\": 12582912", json, StringComparison.Ordinal);
    }

    [Fact]
    public async Task QmpInternalSnapshots_OnRawOverRbd()
    {
        (await ceph.RbdAsync("create", "--size", "8M", "rbd/qmp")).Ok();
        await using var h = QmpServerHarness.Start();
        await using var c = await h.ConnectAsync();
        await c.ReturnAsync("blockdev-add", "{\"driver\": \"raw\", \"id\": \"d0\", \"file\": {\"driver\": \"rbd\", \"pool\": \"rbd\", \"image\": \"qmp\", \"conf\": \"" + ceph.Conf + "\"}}");
        await h.Graph.FindDevice("d0")!.WriteAsync(0, Enumerable.Repeat((byte)0x55, 65536).ToArray());
        await c.ReturnAsync("blockdev-snapshot-internal-sync", """{"device": "d0", "name": "s1"}""");
        Assert.Equal(("GenericError", "Snapshot with name 's1' already exists on device 'd0'"),
            await c.ErrorAsync("blockdev-snapshot-internal-sync", """{"device": "d0", "name": "s1"}"""));
        await h.Graph.FindDevice("d0")!.WriteAsync(0, Enumerable.Repeat((byte)0x66, 65536).ToArray());
        await c.ReturnAsync("blockdev-snapshot-internal-sync", """{"device": "d0", "name": "s2"}""");
        var snaps = (await c.ReturnAsync("query-block"))[0].GetProperty("inserted").GetProperty("image").GetProperty("snapshots");
        Assert.Equal(["s1", "s2"], snaps.EnumerateArray().Select(s => s.GetProperty("name").GetString()!).ToArray());

        var deleted = await c.ReturnAsync("blockdev-snapshot-delete-internal-sync", """{"device": "d0", "name": "s2"}""");
        Assert.Equal("s2", deleted.GetProperty("id").GetString());
        Assert.Equal(("GenericError", "Snapshot with id '' and name 's2' does not exist on device 'd0'"),
            await c.ErrorAsync("blockdev-snapshot-delete-internal-sync", """{"device": "d0", "name": "s2"}"""));
        await c.ReturnAsync("blockdev-del", """{"node-name": "d0"}""");

        var list = (await ceph.RbdAsync("snap", "ls", "rbd/qmp")).Ok().Stdout;
        Assert.Contains("s1", list, StringComparison.Ordinal);
        Assert.DoesNotContain("s2", list, StringComparison.Ordinal);
        // s1 holds the first write.
        string snap = _tmp.File("s1.raw");
        (await ceph.RbdAsync("export", "rbd/qmp@s1", snap)).Ok();
        var bytes = await File.ReadAllBytesAsync(snap);
        Assert.All(bytes.AsSpan(0, 65536).ToArray(), b => Assert.Equal(0x55, b));
    }
}
