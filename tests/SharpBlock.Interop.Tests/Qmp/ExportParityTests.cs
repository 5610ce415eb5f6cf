using System.Net.Sockets;
using System.Text.Json;
using SharpBlock.Interop.Tests.Nbd;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Qmp;

/// <summary>
/// NBD exports managed as QEMU 7.2 manages them, against qemu-storage-daemon 7.2 in the same run: one sequence
/// of nbd-server-start (max-connections), nbd-server-add (with and without name/description), block-export-add,
/// query-block-exports, block-export-del and nbd-server-remove in both modes with clients attached, and
/// nbd-server-stop, goes to both; the replies, the BLOCK_EXPORT_DELETED events, what nbdinfo lists and when a
/// client past max-connections is served must be the same up to timestamps and socket paths.
/// </summary>
public class ExportParityTests
{
    /// <summary>Runs the sequence; returns its replies and events (names and data, no timestamps).</summary>
    private static async Task<List<string>> RunAsync(QmpTestClient c, string nbdSocket)
    {
        var log = new List<string>();
        async Task Do(string command, string? args = null) => log.Add(command + " " + QmpCanonical.Of(await c.ExecuteAsync(command, args)));
        async Task Until(string ev)
        {
            foreach (var e in await c.EventsUntilAsync(ev))
                log.Add("event " + e.GetProperty("event").GetString() + " " + QmpCanonical.Of(e.GetProperty("data")));
        }

        await Do("nbd-server-add", """{"device":"disk0"}""");
        await Do("block-export-add", """{"type":"nbd","id":"e0","node-name":"disk0"}""");
        await Do("block-export-add", """{"type":"nbd","id":"e0","node-name":"nosuch"}""");
        await Do("block-export-add", """{"type":"nbd","id":"e0","node-name":"ro0","writable":true}""");
        await Do("block-export-add", """{"type":"nbd","id":"9a","node-name":"disk0"}""");
        await Do("query-block-exports");
        string addr = "\"addr\":{\"type\":\"unix\",\"data\":{\"path\":" + JsonSerializer.Serialize(nbdSocket) + "}}";
        await Do("nbd-server-start", "{" + addr + ",\"max-connections\":2}");
        await Do("nbd-server-start", "{" + addr + "}");
        await Do("nbd-server-add", """{"device":"disk0"}""");
        await Do("nbd-server-add", """{"device":"disk0"}""");
        await Do("nbd-server-add", """{"device":"disk0","name":"other","description":"second one","writable":true}""");
        await Do("nbd-server-add", """{"device":"ro0","name":"ro","writable":true}""");
        await Do("block-export-add", """{"type":"nbd","id":"e0","node-name":"disk0","name":"x0","description":"hello","writable":true}""");
        await Do("block-export-add", """{"type":"nbd","id":"e0","node-name":"disk0","name":"x1"}""");
        await Do("block-export-add", """{"type":"nbd","id":"e1","node-name":"disk0","name":"x0"}""");
        await Do("block-export-add", """{"type":"nbd","id":"e2","node-name":"ro0","writable":true}""");
        await Do("block-export-add", """{"type":"nbd","id":"e3","node-name":"nosuch"}""");
        await Do("block-export-add", """{"type":"nbd","id":"9a","node-name":"disk0","name":"x9"}""");
        await Do("block-export-add", """{"type":"nbd","id":"e4","node-name":"disk0"}""");
        await Do("block-export-add", """{"type":"nbd","id":"e4","node-name":"disk0","name":"x4","bogus":1}""");
        await Do("block-export-add", "{\"type\":\"nbd\",\"id\":\"e4\",\"node-name\":\"disk0\",\"name\":\"" + new string('n', 4097) + "\"}");
        await Do("block-export-add", "{\"type\":\"nbd\",\"id\":\"e4\",\"node-name\":\"disk0\",\"name\":\"x4\",\"description\":\"" + new string('d', 4097) + "\"}");
        await Do("block-export-add", """{"type":"nbd","id":"e4","node-name":"disk0","name":"x4","writable":"yes"}""");
        // Other export types are left out: 7.2 has them and asks for their members, we answer "Parameter 'type'
        // does not accept value 'vhost-user-blk'".
        await Do("nbd-server-add", """{"device":"disk0","name":"a b"}""");
        await Do("nbd-server-remove", """{"name":"e0","mode":"gentle"}""");
        await Do("block-export-add", """{"type":"nbd","id":"e5","node-name":"disk0","name":"x5","writethrough":true}""");
        await Do("query-block-exports");

        // What clients see of the exports: names, descriptions, sizes, read-only or not.
        var list = (await Tools.RunAsync("nbdinfo", "--list", $"nbd+unix:///?socket={nbdSocket}")).Ok();
        log.Add("nbdinfo " + list.Stdout.Replace(nbdSocket, "SOCKET", StringComparison.Ordinal));

        // Two clients attached, the most max-connections allows: safe removal refuses, a third client waits.
        using var a = await AttachedNbdClient.ConnectAsync(nbdSocket, "x0");
        using var b = await AttachedNbdClient.ConnectAsync(nbdSocket, "other");
        using var third = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await third.ConnectAsync(new UnixDomainSocketEndPoint(nbdSocket));
        await Do("block-export-del", """{"id":"e0"}""");
        await Do("block-export-del", """{"id":"e0","mode":"safe"}""");
        await Do("nbd-server-remove", """{"name":"other"}""");
        await Do("nbd-server-remove", """{"name":"x5","mode":"safe"}""");
        await Do("block-export-del", """{"id":"e0","mode":"hard"}""");
        await Until("BLOCK_EXPORT_DELETED");
        await Do("query-block-exports");
        // The hard removal dropped its client, which freed a slot: now the third is greeted.
        log.Add("dropped client reads " + await AttachedNbdClient.ReadToEndAsync(a));
        log.Add("third client greeted " + Convert.ToHexString(await AttachedNbdClient.ReadExactlyAsync(third, 8)));
        third.Close();
        await Do("nbd-server-remove", """{"name":"other","mode":"hard"}""");
        await Until("BLOCK_EXPORT_DELETED");
        log.Add("dropped client reads " + await AttachedNbdClient.ReadToEndAsync(b));
        await Do("nbd-server-remove", """{"name":"nosuch"}""");
        await Do("block-export-del", """{"id":"nosuch"}""");
        await Do("block-export-del", """{"id":"e5"}""");
        await Until("BLOCK_EXPORT_DELETED");
        await Do("block-export-del", """{"id":"e5"}""");
        await Do("query-block-exports");
        await Do("nbd-server-stop");
        await Until("BLOCK_EXPORT_DELETED");
        await Until("BLOCK_EXPORT_DELETED");
        await Do("query-block-exports");
        // A second nbd-server-stop is left out: 7.2 refuses it ("NBD server not running"), the seed's (2.1)
        // succeeds, and the seed command keeps its behaviour.
        await Do("block-export-add", """{"type":"nbd","id":"e6","node-name":"disk0"}""");
        return log;
    }

    [Fact]
    public async Task Export_management_answers_and_announces_as_qemu_storage_daemon()
    {
        using var dir = new TempDir();
        string img = dir.File("a.raw");
        string ro = dir.File("ro.raw");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "raw", img, "1M")).Ok();
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "raw", ro, "512k")).Ok();

        List<string> theirs;
        await using (var qsd = await QemuStorageDaemon.StartAsync(dir.File("qsd.sock"),
            "--blockdev", $"driver=file,filename={img},node-name=f0", "--blockdev", "driver=raw,file=f0,node-name=disk0",
            "--blockdev", $"driver=file,filename={ro},node-name=ro0,read-only=on"))
        {
            theirs = await RunAsync(qsd.Client, dir.File("q-nbd.sock"));
        }

        await using var d = await QmpHarness.StartAsync();
        await d.AddRawAsync("dev0", img, ",\"node-name\":\"disk0\"");
        await d.Client.ReturnAsync("blockdev-add",
            $"{{\"driver\":\"raw\",\"id\":\"dev1\",\"node-name\":\"ro0\",\"read-only\":true,\"file\":{{\"driver\":\"file\",\"filename\":{JsonSerializer.Serialize(ro)}}}}}");
        var ours = await RunAsync(d.Client, d.NbdSocket);

        Assert.Equal(theirs, ours);
    }
}
