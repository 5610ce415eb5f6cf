using System.Text.Json;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Nbd;

/// <summary>The real NBD clients (nbdinfo, nbdcopy, qemu-img, qemu-io) against our NBD server.</summary>
public class NbdServerInteropTests
{
    private const int MiB = 1 << 20;

    /// <summary>An 8 MiB raw image with data at 1 MiB (1 MiB of 0xab) and 5 MiB (64 KiB of 0xcd), holes elsewhere.</summary>
    private static async Task<string> SparseImageAsync(TempDir dir, string name = "disk.raw")
    {
        string path = dir.File(name);
        (await Tools.RunAsync("qemu-img", "create", "-f", "raw", path, "8M")).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 0xab 1M 1M", "-c", "write -P 0xcd 5M 64k", path)).Ok();
        return path;
    }

    private static async Task<QmpHarness> ExportedAsync(bool writable = true, string extra = "")
    {
        var d = await QmpHarness.StartAsync();
        string path = await SparseImageAsync(d.Dir);
        await d.AddRawAsync("disk0", path, extra);
        await d.StartNbdAsync();
        await d.ExportAsync("disk0", writable);
        return d;
    }

    [Fact]
    public async Task Nbdinfo_list_size_and_map()
    {
        await using var d = await ExportedAsync(writable: false);
        var list = (await Tools.RunAsync("nbdinfo", "--list", $"nbd+unix:///?socket={d.NbdSocket}")).Ok();
        Assert.Contains("export=\"disk0\"", list.Stdout, StringComparison.Ordinal);
        Assert.Contains("export-size: 8388608", list.Stdout, StringComparison.Ordinal);
        Assert.Contains("base:allocation", list.Stdout, StringComparison.Ordinal);
        Assert.Contains("is_read_only: true", list.Stdout, StringComparison.Ordinal);

        var size = (await Tools.RunAsync("nbdinfo", "--size", d.Url("disk0"))).Ok();
        Assert.Equal("8388608", size.Stdout.Trim());

        var map = (await Tools.RunAsync("nbdinfo", "--map", "--json", d.Url("disk0"))).Ok();
        using var doc = JsonDocument.Parse(map.Stdout);
        var extents = doc.RootElement.EnumerateArray()
            .Select(e => (Offset: e.GetProperty("offset").GetInt64(), Length: e.GetProperty("length").GetInt64(), Type: e.GetProperty("type").GetInt32()))
            .ToList();
        Assert.Equal(8L * MiB, extents.Sum(e => e.Length));
        Assert.Contains((1L * MiB, 1L * MiB, 0), extents);
        Assert.Contains((5L * MiB, 65536L, 0), extents);
        Assert.Contains(extents, e => e.Offset == 2L * MiB && e.Type == 3);
    }

    [Fact]
    public async Task Nbdcopy_both_ways()
    {
        await using var d = await ExportedAsync();
        string disk = d.Dir.File("disk.raw");
        string outFile = d.Dir.File("out.raw");
        (await Tools.RunAsync("nbdcopy", d.Url("disk0"), outFile)).Ok();
        Assert.Equal(File.ReadAllBytes(disk), File.ReadAllBytes(outFile));

        // Into the export, with several connections and many requests in flight.
        string src = d.Dir.PatternFile("src.raw", 8 * MiB, seed: 9);
        (await Tools.RunAsync("nbdcopy", "--connections=4", "--requests=32", src, d.Url("disk0"))).Ok();
        (await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "raw", src, d.Url("disk0"))).Ok();
        Assert.Equal(File.ReadAllBytes(src), File.ReadAllBytes(disk));
    }

    [Fact]
    public async Task Qemu_img_compare_and_convert_over_nbd_urls()
    {
        await using var d = await ExportedAsync();
        string disk = d.Dir.File("disk.raw");
        var cmp = (await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "raw", disk, d.Url("disk0"))).Ok();
        Assert.Contains("Images are identical.", cmp.Stdout, StringComparison.Ordinal);

        string q = d.Dir.File("out.qcow2");
        (await Tools.RunAsync("qemu-img", "convert", "-f", "raw", "-O", "qcow2", d.Url("disk0"), q)).Ok();
        (await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "qcow2", disk, q)).Ok();
        // Holes came over as holes: the qcow2 holds only the 1 MiB + 64 KiB of data (plus metadata).
        var info = (await Tools.RunAsync("qemu-img", "map", "--output=json", "-f", "qcow2", q)).Ok();
        using (var map = JsonDocument.Parse(info.Stdout))
        {
            long data = map.RootElement.EnumerateArray().Where(e => e.GetProperty("data").GetBoolean()).Sum(e => e.GetProperty("length").GetInt64());
            Assert.Equal(MiB + 65536, data);
        }

        // And back into the export from a different image.
        string other = d.Dir.File("other.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-f", "qcow2", other, "8M")).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "qcow2", "-c", "write -P 0x42 3M 2M", other)).Ok();
        (await Tools.RunAsync("qemu-img", "convert", "-n", "-f", "qcow2", "-O", "raw", other, d.Url("disk0"))).Ok();
        (await Tools.RunAsync("qemu-img", "compare", "-f", "qcow2", "-F", "raw", other, d.Url("disk0"))).Ok();
        (await Tools.RunAsync("qemu-img", "compare", "-f", "qcow2", "-F", "raw", other, disk)).Ok();
    }

    [Fact]
    public async Task Qemu_io_writes_zeroes_and_discards_read_back_over_nbd_and_on_disk()
    {
        await using var d = await ExportedAsync(extra: ",\"discard\":\"unmap\"");
        string disk = d.Dir.File("disk.raw");
        string url = d.Url("disk0");
        (await Tools.RunAsync("qemu-io", "-f", "raw",
            "-c", "write -P 0x11 100k 8k",
            "-c", "write -z 1M 64k",
            "-c", "write -P 0x22 -f 3M 4k",
            "-c", "discard 1088k 64k",
            "-c", "write -z -u 1152k 64k",
            "-c", "write -z -n 1216k 64k",
            "-c", "flush", url)).Ok();
        var check = (await Tools.RunAsync("qemu-io", "-f", "raw",
            "-c", "read -P 0x11 100k 8k",
            "-c", "read -P 0 1M 256k",
            "-c", "read -P 0x22 3M 4k",
            "-c", "read -P 0xab 1280k 768k", url)).Ok();
        Assert.DoesNotContain("Pattern verification failed", check.Stdout, StringComparison.Ordinal);

        var bytes = File.ReadAllBytes(disk);
        Assert.All(bytes[(100 << 10)..(108 << 10)], b => Assert.Equal(0x11, b));
        Assert.All(bytes[MiB..(MiB + (256 << 10))], b => Assert.Equal(0, b));
        Assert.All(bytes[(3 * MiB)..((3 * MiB) + 4096)], b => Assert.Equal(0x22, b));
        Assert.All(bytes[(1280 << 10)..(2 * MiB)], b => Assert.Equal(0xab, b));

        // The device's statistics count what came in over NBD.
        var stats = await d.Client.ReturnAsync("query-blockstats");
        var s = stats.EnumerateArray().Single(e => e.GetProperty("device").GetString() == "disk0").GetProperty("stats");
        Assert.True(s.GetProperty("wr_bytes").GetInt64() >= (8 << 10) + (64 << 10) + 4096);
        Assert.True(s.GetProperty("rd_bytes").GetInt64() >= (8 << 10) + 4096);
        Assert.True(s.GetProperty("flush_operations").GetInt64() >= 1);
    }

    [Fact]
    public async Task Read_only_export_refuses_writes()
    {
        await using var d = await ExportedAsync(writable: false);
        var r = await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 0x11 0 4k", d.Url("disk0"));
        Assert.DoesNotContain("wrote 4096/4096", r.Stdout, StringComparison.Ordinal);
        Assert.Equal(0, File.ReadAllBytes(d.Dir.File("disk.raw"))[4096]);
    }

    [Fact]
    public async Task Qmp_errors_use_qemu_wording()
    {
        await using var d = await QmpHarness.StartAsync();
        string path = await SparseImageAsync(d.Dir);
        await d.AddRawAsync("disk0", path);
        var e = await d.Client.ErrorAsync("nbd-server-add", """{"device":"disk0"}""");
        Assert.Equal(("GenericError", "NBD server not running"), e);

        await d.StartNbdAsync();
        e = await d.Client.ErrorAsync("nbd-server-start", QmpHarness.UnixAddr(d.Dir.File("other.sock")));
        Assert.Equal(("GenericError", "NBD server already running"), e);

        await d.Client.ReturnAsync("nbd-server-stop");
        e = await d.Client.ErrorAsync("nbd-server-start", """{"addr":{"type":"fd","data":{"str":"fd3"}}}""");
        Assert.Equal(("GenericError", "File descriptor named 'fd3' has not been found"), e);
        await d.StartNbdAsync();

        e = await d.Client.ErrorAsync("nbd-server-add", """{"device":"nope"}""");
        Assert.Equal(("DeviceNotFound", "Device 'nope' not found"), e);

        await d.ExportAsync("disk0", writable: true);
        e = await d.Client.ErrorAsync("nbd-server-add", """{"device":"disk0"}""");
        Assert.Equal(("GenericError", "NBD server already exporting device 'disk0'"), e);

        // Stop drops the listener, the connections and the exports; a new server starts clean.
        var (connected, _) = await SharpBlock.Nbd.Tests.RawNbdClient.OpenAsync(d.NbdSocket, "disk0");
        await using var _c = connected;
        await d.Client.ReturnAsync("nbd-server-stop");
        Assert.True(await connected.IsClosedAsync());
        var r = await Tools.RunAsync("nbdinfo", "--size", d.Url("disk0"));
        Assert.NotEqual(0, r.ExitCode);
        await d.StartNbdAsync();
        r = await Tools.RunAsync("nbdinfo", "--size", d.Url("disk0"));
        Assert.NotEqual(0, r.ExitCode);
        await d.ExportAsync("disk0", writable: false);
        Assert.Equal("8388608", (await Tools.RunAsync("nbdinfo", "--size", d.Url("disk0"))).Ok().Stdout.Trim());
    }

    [Fact]
    public async Task Ejecting_or_deleting_an_exported_device_ends_the_export()
    {
        await using var d = await ExportedAsync();
        var (connected, _) = await SharpBlock.Nbd.Tests.RawNbdClient.OpenAsync(d.NbdSocket, "disk0");
        await using var _c = connected;
        // As in QEMU 2.1 an export does not hold the medium: eject (no force needed) ends the export and its clients.
        await d.Client.ReturnAsync("eject", """{"device":"disk0"}""");
        Assert.True(await connected.IsClosedAsync());
        var list = (await Tools.RunAsync("nbdinfo", "--list", $"nbd+unix:///?socket={d.NbdSocket}")).Stdout;
        Assert.DoesNotContain("disk0", list, StringComparison.Ordinal);

        string other = d.Dir.PatternFile("other.raw", MiB);
        await d.AddRawAsync("disk1", other);
        await d.ExportAsync("disk1", writable: false);
        await d.Client.ReturnAsync("blockdev-del", """{"node-name":"disk1"}""");
        for (int i = 0; i < 100 && d.Server.Nbd.Server!.FindExport("disk1") != null; i++)
            await Task.Delay(20);
        Assert.Null(d.Server.Nbd.Server!.FindExport("disk1"));
    }

    [Fact]
    public async Task Tcp_listener_with_the_seed_union_address()
    {
        await using var d = await QmpHarness.StartAsync();
        string path = await SparseImageAsync(d.Dir);
        await d.AddRawAsync("disk0", path);
        int port = FreePort();
        await d.Client.ReturnAsync("nbd-server-start", "{\"addr\":{\"type\":\"inet\",\"data\":{\"host\":\"127.0.0.1\",\"port\":\"" + port + "\"}}}");
        await d.ExportAsync("disk0", writable: false);
        Assert.Equal("8388608", (await Tools.RunAsync("nbdinfo", "--size", $"nbd://127.0.0.1:{port}/disk0")).Ok().Stdout.Trim());
        (await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "raw", path, $"nbd://127.0.0.1:{port}/disk0")).Ok();
    }

    internal static int FreePort()
    {
        using var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        l.Start();
        return ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
    }
}
