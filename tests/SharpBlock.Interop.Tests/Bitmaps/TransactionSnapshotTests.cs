using System.Text.Json;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Bitmaps;

/// <summary>
/// Snapshots in a transaction, on devices: an external snapshot of one device and an internal one of another
/// happen together, or (when a later action fails) not at all: the first device is back on its own image and
/// takes writes there, and the second image has no snapshot, as qemu-img sees them.
/// </summary>
public class TransactionSnapshotTests
{
    private static string Device(string id, string path) =>
        $"{{\"driver\":\"qcow2\",\"id\":\"{id}\",\"file\":{{\"driver\":\"file\",\"filename\":{JsonSerializer.Serialize(path)}}}}}";

    private static string Actions(string overlay, string snapshot, bool abort)
    {
        var actions = new List<string>
        {
            "{\"type\":\"blockdev-snapshot-sync\",\"data\":{\"device\":\"d0\",\"snapshot-file\":" + JsonSerializer.Serialize(overlay) + ",\"format\":\"qcow2\"}}",
            "{\"type\":\"blockdev-snapshot-internal-sync\",\"data\":{\"device\":\"d1\",\"name\":\"" + snapshot + "\"}}",
        };
        if (abort)
            actions.Add("{\"type\":\"abort\",\"data\":{}}");
        return "{\"actions\":[" + string.Join(",", actions) + "]}";
    }

    private static async Task<string> ImageOfAsync(QmpTestClient c, string device)
    {
        foreach (var d in (await c.ReturnAsync("query-block")).EnumerateArray())
        {
            if (d.GetProperty("device").GetString() == device)
                return d.GetProperty("inserted").GetProperty("file").GetString()!;
        }

        throw new InvalidOperationException("no device " + device);
    }

    private static async Task<string> SnapshotsAsync(string image) =>
        (await Tools.RunAsync("qemu-img", "snapshot", "-U", "-l", image)).Ok().Stdout;

    [Fact]
    public async Task External_and_internal_snapshots_happen_together_or_not_at_all()
    {
        await using var d = await QmpHarness.StartAsync();
        string a = d.Dir.File("a.qcow2"), b = d.Dir.File("b.qcow2");
        foreach (string f in new[] { a, b })
            (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", f, "4M")).Ok();
        (await Tools.RunAsync("qemu-io", "-c", "write -P 0x51 0 1M", a)).Ok();
        await d.Client.ReturnAsync("blockdev-add", Device("d0", a));
        await d.Client.ReturnAsync("blockdev-add", Device("d1", b));

        // Aborted: both snapshots are undone.
        string ov1 = d.Dir.File("ov1.qcow2");
        var (cls, desc) = await d.Client.ErrorAsync("transaction", Actions(ov1, "s1", abort: true));
        Assert.Equal(("GenericError", "Transaction aborted using Abort action"), (cls, desc));
        Assert.Equal(a, await ImageOfAsync(d.Client, "d0"));
        Assert.DoesNotContain("s1", await SnapshotsAsync(b), StringComparison.Ordinal);
        // d0 takes writes on its own image again (it was made a read-only backing file for a moment).
        await d.StartNbdAsync();
        await d.ExportAsync("d0", writable: true);
        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 0x52 1M 64k", "-c", "read -P 0x51 0 1M", d.Url("d0"))).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "read -P 0x52 1M 64k", d.Url("d0"))).Ok();

        // A failing action further on (a snapshot name d1 already has) undoes them too.
        await d.Client.ReturnAsync("blockdev-snapshot-internal-sync", """{"device":"d1","name":"taken"}""");
        (cls, desc) = await d.Client.ErrorAsync("transaction", Actions(d.Dir.File("ov2.qcow2"), "taken", abort: false));
        Assert.Equal("Snapshot with name 'taken' already exists on device 'd1'", desc);
        Assert.Equal(a, await ImageOfAsync(d.Client, "d0"));

        // Carried out: d0 is on the new overlay over a.qcow2, b.qcow2 has the internal snapshot.
        string ov3 = d.Dir.File("ov3.qcow2");
        await d.Client.ReturnAsync("transaction", Actions(ov3, "s3", abort: false));
        Assert.Equal(ov3, await ImageOfAsync(d.Client, "d0"));
        Assert.Contains("s3", await SnapshotsAsync(b), StringComparison.Ordinal);
        var info = (await Tools.RunAsync("qemu-img", "info", "-U", "--output=json", ov3)).Ok().Stdout;
        Assert.Equal(a, JsonDocument.Parse(info).RootElement.GetProperty("backing-filename").GetString());
        await d.Client.ReturnAsync("nbd-server-stop");
        foreach (string id in new[] { "d0", "d1" })
            await d.Client.ReturnAsync("blockdev-del", $"{{\"node-name\":\"{id}\"}}");
        foreach (string f in new[] { a, b, ov3 })
            Assert.StartsWith("No errors were found on the image.", (await Tools.RunAsync("qemu-img", "check", f)).Ok().Stdout, StringComparison.Ordinal);
        (await Tools.RunAsync("qemu-io", "-f", "qcow2", "-c", "read -P 0x52 1M 64k", "-c", "read -P 0x51 0 1M", ov3)).Ok();
    }
}
