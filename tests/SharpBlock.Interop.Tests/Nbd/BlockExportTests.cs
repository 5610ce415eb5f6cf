using System.Net.Sockets;
using System.Text.Json;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Nbd;

/// <summary>
/// Exports made by block-export-add and nbd-server-add's name/description, seen by the real clients
/// (nbdinfo, qemu-io, qemu-img); max-connections; tls-creds refused; the daemon's --export and --qmp-version.
/// </summary>
public class BlockExportTests
{
    [Fact]
    public async Task Real_clients_read_write_and_list_block_exports()
    {
        await using var d = await QmpHarness.StartAsync();
        string img = d.Dir.PatternFile("a.raw", 1 << 20);
        await d.AddRawAsync("dev0", img, ",\"node-name\":\"n0\"");
        await d.StartNbdAsync();
        await d.Client.ReturnAsync("block-export-add",
            """{"type":"nbd","id":"e0","node-name":"n0","name":"rw","description":"the writable one","writable":true,"writethrough":true}""");
        await d.Client.ReturnAsync("nbd-server-add", """{"device":"dev0","name":"ro","description":"a read-only view"}""");

        var list = (await Tools.RunAsync("nbdinfo", "--list", $"nbd+unix:///?socket={d.NbdSocket}")).Ok().Stdout;
        Assert.Contains("export=\"rw\":\n\tdescription: the writable one\n", list, StringComparison.Ordinal);
        Assert.Contains("export=\"ro\":\n\tdescription: a read-only view\n", list, StringComparison.Ordinal);

        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 0x77 64k 64k", d.Url("rw"))).Ok();
        // Written through one export, read through the other and compared with the file by qemu-img.
        (await Tools.RunAsync("qemu-io", "-r", "-f", "raw", "-c", "read -P 0x77 64k 64k", d.Url("ro"))).Ok();
        (await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "raw", img, d.Url("ro"))).Ok();
        // The export is read-only on the wire: qemu-io cannot open it for writing.
        var refused = await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write 0 4k", d.Url("ro"));
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("Permission denied", refused.Stderr, StringComparison.Ordinal);

        var exports = await d.Client.ReturnAsync("query-block-exports");
        Assert.Equal("""[{"id":"ro","node-name":"n0","shutting-down":false,"type":"nbd"},{"id":"e0","node-name":"n0","shutting-down":false,"type":"nbd"}]""",
            QmpCanonical.Of(exports));
    }

    [Fact]
    public async Task A_client_past_max_connections_waits_until_one_leaves()
    {
        await using var d = await QmpHarness.StartAsync();
        string img = d.Dir.PatternFile("a.raw", 1 << 20);
        await d.AddRawAsync("dev0", img);
        await d.Client.ReturnAsync("nbd-server-start",
            "{\"addr\":{\"type\":\"unix\",\"data\":{\"path\":" + JsonSerializer.Serialize(d.NbdSocket) + "}},\"max-connections\":1}");
        await d.ExportAsync("dev0", writable: false);

        using var first = await AttachedNbdClient.ConnectAsync(d.NbdSocket, "dev0");
        using var second = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        // The kernel completes the connection from the listen backlog; the server does not accept it.
        await second.ConnectAsync(new UnixDomainSocketEndPoint(d.NbdSocket));
        await d.Client.ReturnAsync("query-block-exports");
        Assert.Equal(1, d.Server.Nbd.Server!.ConnectionCount);
        Assert.Equal(0, second.Available);

        await d.Client.ReturnAsync("nbd-server-remove", """{"name":"dev0","mode":"hard"}""");
        Assert.Equal("0 bytes, then end of stream", await AttachedNbdClient.ReadToEndAsync(first));
        // The slot the first client held is the second's now: it gets the server's greeting.
        Assert.Equal("NBDMAGIC"u8.ToArray(), await AttachedNbdClient.ReadExactlyAsync(second, 8));
    }

    [Fact]
    public async Task An_export_ends_with_its_medium_and_says_so()
    {
        await using var d = await QmpHarness.StartAsync();
        await d.AddRawAsync("dev0", d.Dir.PatternFile("a.raw", 1 << 20));
        await d.StartNbdAsync();
        await d.Client.ReturnAsync("nbd-server-add", """{"device":"dev0","name":"e"}""");
        using var client = await AttachedNbdClient.ConnectAsync(d.NbdSocket, "e");

        await d.Client.ReturnAsync("eject", """{"device":"dev0"}""");
        Assert.Equal("""{"id":"e"}""", QmpCanonical.Of((await d.Client.WaitEventAsync("BLOCK_EXPORT_DELETED")).GetProperty("data")));
        Assert.Equal("0 bytes, then end of stream", await AttachedNbdClient.ReadToEndAsync(client));
        Assert.Equal("[]", QmpCanonical.Of(await d.Client.ReturnAsync("query-block-exports")));
    }

    [Fact]
    public async Task Tls_credentials_are_refused_until_tls_exists()
    {
        await using var d = await QmpHarness.StartAsync();
        var (cls, desc) = await d.Client.ErrorAsync("nbd-server-start",
            "{\"addr\":{\"type\":\"unix\",\"data\":{\"path\":" + JsonSerializer.Serialize(d.NbdSocket) + "}},\"tls-creds\":\"tls0\"}");
        Assert.Equal(("GenericError", "TLS is not supported by this NBD server yet: nbd-server-start takes no 'tls-creds' or 'tls-authz'"), (cls, desc));
        Assert.False(File.Exists(d.NbdSocket));
        await d.StartNbdAsync();
    }

    [Fact]
    public async Task The_daemon_reports_7_2_when_asked_and_lists_its_export_options()
    {
        using var dir = new TempDir();
        string path = dir.PatternFile("disk.raw", 1 << 20);
        string nbd = dir.File("nbd.sock");
        string qmp = dir.File("qmp.sock");
        using var p = Tools.StartSharpBlock("daemon", "--qmp", "unix:" + qmp, "--qmp-version", "7.2",
            "--blockdev", $"driver=file,node-name=f0,filename={path}",
            "--nbd-server", $"addr.type=unix,addr.path={nbd}",
            "--export", "type=nbd,id=e0,node-name=f0,writable=on,writethrough=on,name=exp");
        try
        {
            await SocketWait.ForListenerAsync(qmp);
            await using var c = await QmpTestClient.ConnectUnixAsync(qmp);
            Assert.Equal("""{"major":7,"micro":0,"minor":2}""", QmpCanonical.Of(c.Greeting.GetProperty("QMP").GetProperty("version").GetProperty("qemu")));
            Assert.Equal("""{"major":7,"micro":0,"minor":2}""", QmpCanonical.Of((await c.ReturnAsync("query-version")).GetProperty("qemu")));
            Assert.Equal("""[{"id":"e0","node-name":"f0","shutting-down":false,"type":"nbd"}]""", QmpCanonical.Of(await c.ReturnAsync("query-block-exports")));
            (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 0x3c 4k 4k", $"nbd+unix:///exp?socket={nbd}")).Ok();
            // qemu-io is gone once it exits, but the server learns it only when it reads the client's disconnect:
            // a safe delete may still find the client for a moment (qemu-storage-daemon's too). It must succeed soon.
            for (int attempt = 0; ; attempt++)
            {
                var del = await c.ExecuteAsync("block-export-del", """{"id":"e0"}""");
                if (del.TryGetProperty("return", out _))
                    break;
                Assert.True(attempt < 100 && del.ToString().Contains("still in use", StringComparison.Ordinal), del.ToString());
                await Task.Delay(50);
            }

            Assert.Equal("""{"id":"e0"}""", QmpCanonical.Of((await c.WaitEventAsync("BLOCK_EXPORT_DELETED")).GetProperty("data")));
            // The export let go of its node: it can be deleted now.
            await c.ReturnAsync("blockdev-del", """{"node-name":"f0"}""");
            await c.ExecuteAsync("quit");
            Assert.True(p.WaitForExit(20000));
            Assert.All(File.ReadAllBytes(path)[4096..8192], b => Assert.Equal(0x3c, b));
        }
        finally
        {
            if (!p.HasExited)
                p.Kill();
        }
    }
}
