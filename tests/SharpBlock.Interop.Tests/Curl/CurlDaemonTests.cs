using System.Text.Json;
using SharpBlock.Errors;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Curl;

/// <summary>
/// http nodes in the daemon: blockdev-add in the seed's filename form and with url and options, an NBD export
/// that qemu-img reads, and a web server that dies: the reads after it fail with EIO at the client while the
/// daemon goes on answering QMP.
/// </summary>
public class CurlDaemonTests
{
    [Fact]
    public async Task Blockdev_add_reads_over_http_and_a_dead_server_gives_io_errors_while_the_daemon_keeps_serving()
    {
        using var dir = new TempDir();
        string root = Directory.CreateDirectory(dir.File("www")).FullName;
        string image = dir.PatternFile("www/disk.raw", 4 << 20, seed: 3);
        using var server = await LoopbackServer.NginxAsync(dir, root);
        string url = server.Url + "disk.raw";
        string sock = dir.File("q.sock");
        string nbd = dir.File("nbd.sock");
        using var p = Tools.StartSharpBlock("daemon", "--qmp", $"unix:{sock},server=on,wait=off");
        try
        {
            await SocketWait.ForListenerAsync(sock);
            await using var qmp = await QmpTestClient.ConnectUnixAsync(sock);
            var (cls, desc) = await qmp.ErrorAsync("blockdev-add", $$$$"""{"options": {"driver": "http", "id": "rw", "filename": "{{{{url}}}}"}}""");
            Assert.Equal(("GenericError", "curl block device does not support writes"), (cls, desc));
            (cls, desc) = await qmp.ErrorAsync("blockdev-add", $$$$"""{"options": {"driver": "https", "id": "x", "read-only": true, "url": "{{{{url}}}}"}}""");
            Assert.Equal($"'{url}' is not a https:// URL, as driver 'https' needs", desc);
            (cls, desc) = await qmp.ErrorAsync("blockdev-add", $$$$"""{"options": {"driver": "http", "id": "x", "read-only": true, "url": "{{{{url}}}}", "readahead": 1000}}""");
            Assert.StartsWith("HTTP_READAHEAD_SIZE 1000 is not a multiple of 512", desc, StringComparison.Ordinal);

            await qmp.ReturnAsync("blockdev-add", $$$$"""{"options": {"driver": "raw", "id": "d0", "read-only": true, "file": {"driver": "http", "filename": "{{{{url}}}}"}}}""");
            await qmp.ReturnAsync("blockdev-add", $$$$"""{"options": {"driver": "http", "id": "d1", "read-only": true, "url": "{{{{url}}}}", "readahead": 1048576, "timeout": 10, "cookie": "a=b"}}""");
            var blocks = await qmp.ReturnAsync("query-block");
            Assert.Equal(url, blocks[0].GetProperty("inserted").GetProperty("file").GetString());
            Assert.Equal("http", blocks[1].GetProperty("inserted").GetProperty("drv").GetString());
            Assert.Equal(4 << 20, blocks[1].GetProperty("inserted").GetProperty("image").GetProperty("virtual-size").GetInt64());

            await qmp.ReturnAsync("nbd-server-start", $$$$"""{"addr": {"type": "unix", "data": {"path": "{{{{nbd}}}}"}}}""");
            await qmp.ReturnAsync("nbd-server-add", """{"device": "d0"}""");
            string export = $"nbd+unix:///d0?socket={nbd}";
            var same = await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "raw", export, image);
            Assert.Equal("Images are identical.\n", same.Ok().Stdout);

            server.Kill();
            // 1 MiB reads are larger than the readahead window, so each goes to the (now dead) server.
            var read = await Tools.RunAsync("qemu-io", "-r", "-f", "raw", "-c", "read 1M 1M", export);
            Assert.Contains("read failed: Input/output error", read.Stdout + read.Stderr, StringComparison.Ordinal);

            // The daemon is still there: QMP answers, the export still accepts clients, other commands work.
            blocks = await qmp.ReturnAsync("query-block");
            Assert.Equal(2, blocks.GetArrayLength());
            var again = await Tools.RunAsync("qemu-io", "-r", "-f", "raw", "-c", "read 2M 1M", export);
            Assert.Contains("read failed: Input/output error", again.Stdout + again.Stderr, StringComparison.Ordinal);
            await qmp.ReturnAsync("query-block");
        }
        finally
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task A_server_killed_during_one_long_transfer_fails_that_read_with_eio_and_the_daemon_goes_on()
    {
        using var dir = new TempDir();
        string root = Directory.CreateDirectory(dir.File("www")).FullName;
        dir.PatternFile("www/big.raw", 32 << 20, seed: 4);
        // 16 MiB at 256 KiB/s is a minute of transfer: the kill lands inside it, never between reads.
        using var server = await LoopbackServer.NginxAsync(dir, root, rate: "256k");
        string url = server.Url + "big.raw";
        await using var h = await QmpHarness.StartAsync();
        var dev = await h.AddRawAsync("d0", "", ", \"read-only\": true", $"{{\"driver\": \"http\", \"url\": {JsonSerializer.Serialize(url)}}}");
        await h.Client.ReturnAsync("nbd-server-start", $$$$"""{"addr": {"type": "unix", "data": {"path": "{{{{h.NbdSocket}}}}"}}}""");
        await h.Client.ReturnAsync("nbd-server-add", """{"device": "d0"}""");

        // One read larger than the readahead goes to the server as one transfer.
        var read = dev.ReadAsync(0, new byte[16 << 20]).AsTask();
        for (int i = 0; i < 3000 && !server.HasClient() && !read.IsCompleted; i++)
            await Task.Delay(10);
        Assert.True(server.HasClient(), "the transfer never reached the server");
        Assert.False(read.IsCompleted, "the transfer ended before the server was killed");
        server.Kill();

        var ex = await Assert.ThrowsAsync<BlockException>(() => read);
        Assert.Equal(Errno.EIO, ex.Errno);
        Assert.StartsWith($"CURL: reading {16 << 20} bytes at offset 0 of {url} failed: ", ex.Message, StringComparison.Ordinal);
        Assert.True(ex.Message.Length > $"CURL: reading {16 << 20} bytes at offset 0 of {url} failed: ".Length, "curl's reason is missing");

        // The daemon goes on: QMP answers, the export takes new clients, and they get EIO too.
        Assert.Equal(1, (await h.Client.ReturnAsync("query-block")).GetArrayLength());
        var again = await Tools.RunAsync("qemu-io", "-r", "-f", "raw", "-c", "read 0 64k", h.Url("d0"));
        Assert.Contains("read failed: Input/output error", again.Stdout + again.Stderr, StringComparison.Ordinal);
        Assert.Contains("virtual size: 32 MiB", (await Tools.RunAsync("qemu-img", "info", "-f", "raw", h.Url("d0"))).Ok().Stdout, StringComparison.Ordinal);
    }
}
