using System.Text.Json;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Rbd;

/// <summary>
/// The move a user makes when one machine is no longer enough: a running disk (a local qcow2 device) mirrored
/// into a raw image on Ceph while the guest keeps writing to it over NBD, then completed so the device runs
/// from rbd. What Ceph holds afterwards, read by Ceph's own `rbd export` and by qemu-img's rbd driver, is the
/// disk with every acknowledged write.
/// </summary>
public sealed class RbdMirrorTests(CephCluster ceph) : IClassFixture<CephCluster>
{
    private const int Size = 16 << 20;

    /// <summary>One guest write through the NBD export with qemu-io, recorded in the model.</summary>
    private static async Task GuestWriteAsync(string url, byte[] model, int offset, int length, byte pattern)
    {
        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", $"write -P {pattern} {offset} {length}", url)).Ok();
        model.AsSpan(offset, length).Fill(pattern);
    }

    [Fact]
    public async Task Mirror_of_a_local_qcow2_into_rbd_while_the_guest_writes_over_nbd()
    {
        using var dir = new TempDir();
        var model = new byte[Size];
        string disk = dir.File("disk.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", disk, Size.ToString(System.Globalization.CultureInfo.InvariantCulture))).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "qcow2", "-c", "write -P 17 0 4M", "-c", "write -P 34 9M 3M", disk)).Ok();
        model.AsSpan(0, 4 << 20).Fill(17);
        model.AsSpan(9 << 20, 3 << 20).Fill(34);
        byte[] atSwitch;

        var h = await QmpHarness.StartAsync();
        try
        {
            var c = h.Client;
            await c.ReturnAsync("blockdev-add", """{"options": {"driver": "qcow2", "id": "d0", "file": {"driver": "file", "filename": """ + JsonSerializer.Serialize(disk) + "}}}");
            // The target: a raw image of the same size on the cluster, opened as a node of its own.
            (await ceph.RbdAsync("create", "--size", "16", "rbd/moved")).Ok();
            await c.ReturnAsync("blockdev-add", $$$"""{"driver": "raw", "node-name": "tgt", "file": {"driver": "rbd", "pool": "rbd", "image": "moved", "conf": {{{JsonSerializer.Serialize(ceph.Conf)}}}}}""");

            await h.StartNbdAsync();
            await c.ReturnAsync("nbd-server-add", """{"device": "d0", "writable": true}""");
            string url = $"nbd+unix:///d0?socket={h.NbdSocket}";

            // Slow enough (4 MiB/s for 16 MiB) that the guest's writes land while the copy runs.
            await c.ReturnAsync("blockdev-mirror", """{"job-id": "m0", "device": "d0", "target": "tgt", "sync": "full", "speed": 4194304}""");
            // A fixed number of guest writes while the copy runs (an endless stream at this speed would keep
            // the mirror from ever converging), then the job is left to catch up.
            var rng = new Random(19);
            for (int i = 0; i < 12; i++)
            {
                int offset = rng.Next(0, Size / 4096 - 16) * 4096;
                await GuestWriteAsync(url, model, offset, rng.Next(1, 16) * 4096, (byte)(50 + i));
            }

            Assert.False((await c.ReturnAsync("query-block-jobs"))[0].GetProperty("ready").GetBoolean(), "the mirror was ready before the guest's writes were done");
            await c.WaitEventAsync("BLOCK_JOB_READY");

            // Writes after ready go to both sides until the switch.
            await GuestWriteAsync(url, model, 5 << 20, 65536, 0xEE);
            await c.ReturnAsync("job-complete", """{"id": "m0"}""");
            var done = await c.WaitEventAsync("BLOCK_JOB_COMPLETED");
            Assert.False(done.GetProperty("data").TryGetProperty("error", out _), done.ToString());

            // The device now runs from rbd: a write after the switch reaches Ceph and not the old disk.
            atSwitch = (byte[])model.Clone();
            var inserted = (await c.ReturnAsync("query-block"))[0].GetProperty("inserted");
            Assert.Equal("raw", inserted.GetProperty("drv").GetString());
            await GuestWriteAsync(url, model, Size - 8192, 8192, 0x77);
            await c.ReturnAsync("nbd-server-stop");
        }
        finally
        {
            // Closed before the checks, so every image is flushed and let go of.
            await h.DisposeAsync();
        }

        string exported = dir.File("moved.raw");
        (await ceph.RbdAsync("export", "rbd/moved", exported)).Ok();
        Assert.True(model.AsSpan().SequenceEqual(File.ReadAllBytes(exported)), "rbd export differs from the disk the guest wrote");
        string modelFile = dir.File("model.raw");
        await File.WriteAllBytesAsync(modelFile, model);
        (await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "raw", modelFile, ceph.Name("moved"))).Ok();
        // The old disk stopped at the switch, and qemu-img finds it sound.
        (await Tools.RunAsync("qemu-img", "check", disk)).Ok();
        (await Tools.RunAsync("qemu-img", "convert", "-f", "qcow2", "-O", "raw", disk, dir.File("old.raw"))).Ok();
        Assert.True(atSwitch.AsSpan().SequenceEqual(File.ReadAllBytes(dir.File("old.raw"))), "the old disk is not the disk at the switch");
    }
}
