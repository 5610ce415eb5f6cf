using System.Text.Json;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Bitmaps;

/// <summary>
/// The block-dirty-bitmap-* commands against qemu-storage-daemon 7.2 in the same run: the same nodes, the same
/// commands (good and bad arguments), the same writes through an NBD export of the nodes (qemu-io), and then the
/// replies and every node's dirty-bitmaps must be equal, counts included; closed, the images must hold the
/// same persistent bitmaps for qemu-img, and qemu-img check must find them clean.
/// </summary>
public class BitmapParityTests
{
    private static readonly string[] Commands =
    [
        """block-dirty-bitmap-add {"node":"nope","name":"b"}""",
        """block-dirty-bitmap-add {"node":"nope","name":""}""",
        """block-dirty-bitmap-add {"node":"q0","name":""}""",
        """block-dirty-bitmap-add {"node":"nope","name":"b","granularity":3}""",
        """block-dirty-bitmap-add {"node":"q0","name":"b","granularity":0}""",
        """block-dirty-bitmap-add {"node":"q0","name":"b","granularity":256}""",
        """block-dirty-bitmap-add {"node":"q0","name":"b","granularity":1000}""",
        """block-dirty-bitmap-add {"node":"q0","name":"b","granularity":4294967296}""",
        """block-dirty-bitmap-add {"node":"q0","name":"b","granularity":-512}""",
        """block-dirty-bitmap-add {"node":"q0"}""",
        """block-dirty-bitmap-add {"node":"q0","name":5}""",
        """block-dirty-bitmap-add {"node":"q0","name":"x","extra":1}""",
        """block-dirty-bitmap-add {"node":"q0","name":"big","granularity":2147483648}""",
        """block-dirty-bitmap-add {"node":"q0","name":"b"}""",
        """block-dirty-bitmap-add {"node":"q0","name":"b"}""",
        """block-dirty-bitmap-add {"node":"q0","name":"dis","disabled":true,"persistent":false}""",
        """block-dirty-bitmap-add {"node":"q0","name":"g4k","granularity":4096}""",
        """block-dirty-bitmap-add {"node":"q0","name":"m","disabled":true}""",
        """block-dirty-bitmap-add {"node":"r0","name":"p","persistent":true}""",
        """block-dirty-bitmap-add {"node":"raw0","name":"p","persistent":true}""",
        """block-dirty-bitmap-add {"node":"raw0","name":"g"}""",
        """block-dirty-bitmap-add {"node":"raw0","name":"g","persistent":true}""",
        """block-dirty-bitmap-add {"node":"c512","name":"d"}""",
        """block-dirty-bitmap-add {"node":"q0","name":"pers","persistent":true,"granularity":8192}""",
        """block-dirty-bitmap-add {"node":"q0","name":"pers","persistent":true}""",
        """block-dirty-bitmap-add {"node":"q0","name":"b","persistent":true}""",
        """block-dirty-bitmap-add {"node":"v2","name":"p","persistent":true}""",
        """block-dirty-bitmap-add {"node":"v2","name":"p"}""",
        """block-dirty-bitmap-add {"node":"c512","name":"pp","persistent":true,"granularity":512,"disabled":true}""",
        """block-dirty-bitmap-add {"node":"q0","name":"nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn","persistent":true}""",
        """block-dirty-bitmap-add {"node":"q0","name":"nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn","persistent":true}""",
        """block-dirty-bitmap-remove {"node":"q0","name":"nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"}""",
        """block-dirty-bitmap-add {"node":"c512","name":"fine","granularity":512}""",
        """block-dirty-bitmap-add {"node":"c2m","name":"d"}""",
        """block-dirty-bitmap-remove {"node":"q0","name":"zz"}""",
        """block-dirty-bitmap-remove {"node":"nope","name":"zz"}""",
        """block-dirty-bitmap-clear {"node":"q0","name":"zz"}""",
        """block-dirty-bitmap-enable {"node":"q0","name":"zz"}""",
        """block-dirty-bitmap-disable {"node":"nope","name":"zz"}""",
        """block-dirty-bitmap-disable {"node":"q0","name":"b"}""",
        """block-dirty-bitmap-disable {"node":"q0","name":"b"}""",
        """block-dirty-bitmap-enable {"node":"q0","name":"b"}""",
        """block-dirty-bitmap-enable {"node":"q0","name":"b"}""",
        """block-dirty-bitmap-merge {"node":"q0","target":"zz","bitmaps":["b"]}""",
        """block-dirty-bitmap-merge {"node":"q0","target":"b","bitmaps":["zz"]}""",
        """block-dirty-bitmap-merge {"node":"q0","target":"b","bitmaps":[{"node":"nope","name":"b"}]}""",
        """block-dirty-bitmap-merge {"node":"q0","target":"b","bitmaps":[{"node":"raw0","name":"g"}]}""",
        """block-dirty-bitmap-merge {"node":"q0","target":"b","bitmaps":[{"node":"q0"}]}""",
        """block-dirty-bitmap-merge {"node":"q0","target":"b"}""",
        """block-dirty-bitmap-merge {"node":"q0","target":"b","bitmaps":["b","dis"]}""",
        """block-dirty-bitmap-add {"node":"q0","name":"gone"}""",
        """block-dirty-bitmap-remove {"node":"q0","name":"gone"}""",
        """block-dirty-bitmap-remove {"node":"q0","name":"gone"}""",
    ];

    // After the writes: merges across granularities and nodes, clear, and the bitmaps' state again.
    private static readonly string[] After =
    [
        """block-dirty-bitmap-merge {"node":"q0","target":"m","bitmaps":["b"]}""",
        """block-dirty-bitmap-merge {"node":"q0","target":"g4k","bitmaps":["big",{"node":"q0","name":"b"}]}""",
        """block-dirty-bitmap-merge {"node":"c512","target":"fine","bitmaps":["d"]}""",
        """block-dirty-bitmap-clear {"node":"q0","name":"b"}""",
        """block-dirty-bitmap-clear {"node":"q0","name":"dis"}""",
    ];

    private static async Task<List<string>> RunAsync(QmpTestClient c, TempDir dir, string prefix)
    {
        var replies = new List<string>();
        async Task Do(string line) => replies.Add(await QmpTranscript.RunAsync(c, line));

        foreach (var (name, file) in new[] { ("q0", "a.qcow2"), ("c512", "c512.qcow2"), ("c2m", "c2m.qcow2"), ("v2", "v2.qcow2") })
        {
            await c.ReturnAsync("blockdev-add", $"{{\"driver\":\"file\",\"node-name\":\"{name}-f\",\"filename\":{JsonSerializer.Serialize(dir.File(prefix + file))}}}");
            await c.ReturnAsync("blockdev-add", $"{{\"driver\":\"qcow2\",\"node-name\":\"{name}\",\"file\":\"{name}-f\",\"discard\":\"unmap\"}}");
        }

        await c.ReturnAsync("blockdev-add", $"{{\"driver\":\"file\",\"node-name\":\"r0\",\"filename\":{JsonSerializer.Serialize(dir.File(prefix + "r.raw"))}}}");
        await c.ReturnAsync("blockdev-add", "{\"driver\":\"raw\",\"node-name\":\"raw0\",\"file\":\"r0\"}");

        foreach (string line in Commands)
            await Do(line);
        replies.Add(await QmpTranscript.BitmapsAsync(c));

        // Writes, write-zeroes and a discard through NBD exports of the nodes, by a real client.
        string sock = dir.File(prefix + "nbd.sock");
        await c.ReturnAsync("nbd-server-start", "{\"addr\":{\"type\":\"unix\",\"data\":{\"path\":" + JsonSerializer.Serialize(sock) + "}}}");
        foreach (string n in new[] { "q0", "c512", "raw0" })
            await c.ReturnAsync("nbd-server-add", "{\"device\":\"" + n + "\",\"writable\":true}");
        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write 0 1", "-c", "write 1M 70k", "-c", "write -z 4M 64k",
            "-c", "discard 8M 128k", "-c", "write 63M 1M", $"nbd+unix:///q0?socket={sock}")).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write 1000 5000", "-c", "write -z 100k 3k", $"nbd+unix:///c512?socket={sock}")).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write 200k 1", $"nbd+unix:///raw0?socket={sock}")).Ok();
        await c.ReturnAsync("nbd-server-stop");
        replies.Add(await QmpTranscript.BitmapsAsync(c));

        foreach (string line in After)
            await Do(line);
        replies.Add(await QmpTranscript.BitmapsAsync(c));

        // Closing stores the persistent bitmaps; what qemu-img then finds in the image must be the same.
        foreach (string n in new[] { "q0", "c512" })
            await c.ReturnAsync("blockdev-del", "{\"node-name\":\"" + n + "\"}");
        foreach (string f in new[] { "a.qcow2", "c512.qcow2" })
        {
            var info = (await Tools.RunAsync("qemu-img", "info", "--output=json", dir.File(prefix + f))).Ok();
            using var doc = JsonDocument.Parse(info.Stdout);
            replies.Add(f + ": " + QmpTranscript.Canonical(doc.RootElement.GetProperty("format-specific").GetProperty("data").GetProperty("bitmaps")));
            replies.Add(f + ": " + (await Tools.RunAsync("qemu-img", "check", dir.File(prefix + f))).Ok().Stdout.Split('\n')[0]);
        }

        return replies;
    }

    private static async Task MakeImagesAsync(TempDir dir, string prefix)
    {
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", dir.File(prefix + "a.qcow2"), "64M")).Ok();
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=512", dir.File(prefix + "c512.qcow2"), "1M")).Ok();
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=2M", dir.File(prefix + "c2m.qcow2"), "4M")).Ok();
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "raw", dir.File(prefix + "r.raw"), "1M")).Ok();
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=0.10", dir.File(prefix + "v2.qcow2"), "1M")).Ok();
    }

    [Fact]
    public async Task Bitmap_commands_and_the_marks_writes_leave_are_qemu_storage_daemons()
    {
        using var dir = new TempDir();
        await MakeImagesAsync(dir, "q-");
        await MakeImagesAsync(dir, "s-");
        List<string> theirs;
        await using (var qsd = await QemuStorageDaemon.StartAsync(dir.File("qsd.sock")))
            theirs = await RunAsync(qsd.Client, dir, "q-");

        await using var d = await QmpHarness.StartAsync();
        var ours = await RunAsync(d.Client, dir, "s-");
        Assert.Equal(theirs, ours);
    }
}
