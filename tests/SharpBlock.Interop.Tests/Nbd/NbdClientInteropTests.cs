using System.Text.Json;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Nbd.Client;
using SharpBlock.Qmp.Schema;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Nbd;

/// <summary>Our nbd client driver against qemu-nbd, the reference server.</summary>
public class NbdClientInteropTests
{
    private const int MiB = 1 << 20;

    private static async Task<BlockNode> OpenAsync(BlockGraph graph, string socket, string export)
    {
        string json = "{\"driver\":\"nbd\",\"node-name\":\"n0\",\"discard\":\"unmap\",\"server\":{\"type\":\"unix\",\"data\":{\"path\":\""
            + socket + "\"}},\"export\":\"" + export + "\"}";
        using var doc = JsonDocument.Parse(json);
        return await graph.AddAsync(QapiCodec.ReadBlockdevOptions(doc.RootElement, "", false));
    }

    private static BlockGraph ClientGraph()
    {
        var r = BlockDriverRegistry.CreateDefault();
        NbdClientDriver.Register(r);
        return new BlockGraph(r);
    }

    [Fact]
    public async Task Reads_and_writes_a_qemu_nbd_export()
    {
        using var dir = new TempDir();
        string path = dir.File("disk.raw");
        (await Tools.RunAsync("qemu-img", "create", "-f", "raw", path, "4M")).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 0x5c 1M 512k", path)).Ok();
        await using var qnbd = await QemuNbd.StartAsync(path, dir.File("q.sock"), "exp0");
        await using var graph = ClientGraph();
        var node = await OpenAsync(graph, qnbd.Socket, "exp0");
        Assert.Equal(4 * MiB, node.Length);

        var all = new byte[4 * MiB];
        await node.ReadAsync(0, all);
        Assert.Equal(File.ReadAllBytes(path), all);

        var st = await node.GetBlockStatusAsync(2 * MiB, 2 * MiB);
        Assert.True(st.IsZero);
        Assert.False(st.IsData);
        st = await node.GetBlockStatusAsync(MiB, MiB);
        Assert.True(st.IsData);
        Assert.Equal(512 << 10, st.Length);

        var data = new byte[300_000];
        new Random(3).NextBytes(data);
        await node.WriteAsync(12345, data);
        await node.WriteZeroesAsync(MiB, 4096);
        await node.DiscardAsync(MiB + 65536, 65536);
        await node.FlushAsync();

        var disk = File.ReadAllBytes(path);
        Assert.Equal(data, disk[12345..(12345 + data.Length)]);
        Assert.All(disk[MiB..(MiB + 4096)], b => Assert.Equal(0, b));
        Assert.All(disk[(MiB + 65536)..(MiB + 131072)], b => Assert.Equal(0, b));
        Assert.All(disk[(MiB + 131072)..(MiB + (512 << 10))], b => Assert.Equal(0x5c, b));
        (await Tools.RunAsync("qemu-io", "-f", "raw", "-r", "-c", "read -P 0x5c 1152k 384k", $"nbd+unix:///exp0?socket={qnbd.Socket}")).Ok();
    }

    [Fact]
    public async Task A_qemu_nbd_export_re_exported_by_our_server()
    {
        await using var d = await QmpHarness.StartAsync();
        string path = d.Dir.File("disk.raw");
        (await Tools.RunAsync("qemu-img", "create", "-f", "raw", path, "4M")).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 0x77 0 1M", path)).Ok();
        await using var qnbd = await QemuNbd.StartAsync(path, d.Dir.File("q.sock"), "exp0");
        await d.Client.ReturnAsync("blockdev-add",
            "{\"driver\":\"nbd\",\"id\":\"remote\",\"server\":{\"type\":\"unix\",\"data\":{\"path\":\"" + qnbd.Socket + "\"}},\"export\":\"exp0\"}");
        var blocks = await d.Client.ReturnAsync("query-block");
        Assert.Contains($"nbd+unix:///exp0?socket={qnbd.Socket}", blocks.ToString(), StringComparison.Ordinal);

        await d.StartNbdAsync();
        await d.ExportAsync("remote", writable: true);
        (await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "raw", path, d.Url("remote"))).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 0x99 2M 64k", "-c", "flush", d.Url("remote"))).Ok();
        Assert.All(File.ReadAllBytes(path)[(2 * MiB)..((2 * MiB) + 65536)], b => Assert.Equal(0x99, b));
    }

    [Fact]
    public async Task Losing_qemu_nbd_is_an_io_error_with_a_clear_message()
    {
        using var dir = new TempDir();
        string path = dir.PatternFile("disk.raw", MiB);
        var qnbd = await QemuNbd.StartAsync(path, dir.File("q.sock"), "exp0");
        await using var graph = ClientGraph();
        var node = await OpenAsync(graph, qnbd.Socket, "exp0");
        await node.ReadAsync(0, new byte[4096]);
        await qnbd.DisposeAsync();

        var ex = await Assert.ThrowsAsync<BlockException>(async () => await node.ReadAsync(0, new byte[4096]));
        Assert.Equal(Errno.EIO, ex.Errno);
        Assert.StartsWith($"NBD connection to '{qnbd.Socket}' lost", ex.Message, StringComparison.Ordinal);
    }
}
