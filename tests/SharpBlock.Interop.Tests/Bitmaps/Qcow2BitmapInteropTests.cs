using System.Text.Json;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Bitmaps;

/// <summary>
/// Persistent bitmaps between us and QEMU 7.2 on real qcow2 files: bitmaps made by qemu-img are loaded with
/// their bits and updated by our writes, ours are read by qemu-storage-daemon with the same counts, convert
/// --bitmaps copies them, qemu-img check finds no leak, and a daemon killed with SIGKILL leaves them in use,
/// which both sides then report as inconsistent.
/// </summary>
public class Qcow2BitmapInteropTests
{
    /// <summary>Each bitmap of the node as "name count granularity recording[ inconsistent]", in query order.</summary>
    private static async Task<List<string>> BitmapsAsync(QmpTestClient c, string node)
    {
        var list = new List<string>();
        foreach (var n in (await c.ReturnAsync("query-named-block-nodes")).EnumerateArray())
        {
            if (n.GetProperty("node-name").GetString() != node || !n.TryGetProperty("dirty-bitmaps", out var bs))
                continue;
            foreach (var b in bs.EnumerateArray())
            {
                list.Add($"{b.GetProperty("name").GetString()} {b.GetProperty("count").GetInt64()} {b.GetProperty("granularity").GetInt64()} "
                    + $"{b.GetProperty("recording").GetBoolean()}" + (b.TryGetProperty("inconsistent", out var i) && i.GetBoolean() ? " inconsistent" : ""));
            }
        }

        return list;
    }

    /// <summary>qemu-img info's bitmaps: "name granularity flag,flag" each.</summary>
    private static async Task<List<string>> QemuImgBitmapsAsync(string image)
    {
        var r = (await Tools.RunAsync("qemu-img", "info", "-U", "--output=json", image)).Ok();
        using var doc = JsonDocument.Parse(r.Stdout);
        var list = new List<string>();
        if (!doc.RootElement.GetProperty("format-specific").GetProperty("data").TryGetProperty("bitmaps", out var bs))
            return list;
        foreach (var b in bs.EnumerateArray())
            list.Add($"{b.GetProperty("name").GetString()} {b.GetProperty("granularity").GetInt64()} {string.Join(",", b.GetProperty("flags").EnumerateArray().Select(f => f.GetString()))}");
        return list;
    }

    private static string AddQcow2(string node, string path) =>
        $"{{\"driver\":\"qcow2\",\"node-name\":\"{node}\",\"file\":{{\"driver\":\"file\",\"filename\":{JsonSerializer.Serialize(path)}}}}}";

    [Fact]
    public async Task Bitmaps_made_by_qemu_img_are_loaded_updated_and_stored_for_qemu_again()
    {
        using var dir = new TempDir();
        string img = dir.File("a.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", img, "16M")).Ok();
        (await Tools.RunAsync("qemu-img", "bitmap", "--add", img, "qb1")).Ok();
        (await Tools.RunAsync("qemu-io", "-c", "write 0 64k", img)).Ok();
        (await Tools.RunAsync("qemu-img", "bitmap", "--add", "-g", "4096", "--disable", img, "qb2")).Ok();
        (await Tools.RunAsync("qemu-img", "bitmap", "--merge", "qb1", img, "qb2")).Ok();

        List<string> ours;
        await using (var d = await QmpHarness.StartAsync())
        {
            await d.Client.ReturnAsync("blockdev-add", AddQcow2("n0", img));
            Assert.Equal(["qb2 65536 4096 False", "qb1 65536 65536 True"], await BitmapsAsync(d.Client, "n0"));
            // While we have it open for writing, the image says the bitmaps are in use.
            Assert.Equal(["qb1 65536 in-use,auto", "qb2 4096 in-use"], await QemuImgBitmapsAsync(img));

            await d.Client.ReturnAsync("block-dirty-bitmap-add", "{\"node\":\"n0\",\"name\":\"ours\",\"persistent\":true,\"granularity\":512}");
            await d.Client.ReturnAsync("nbd-server-start", QmpHarness.UnixAddr(d.NbdSocket));
            await d.Client.ReturnAsync("nbd-server-add", "{\"device\":\"n0\",\"writable\":true}");
            (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write 1M 1k", "-c", "write 5M 100k", d.Url("n0"))).Ok();
            ours = await BitmapsAsync(d.Client, "n0");
            Assert.Equal(["ours 103424 512 True", "qb2 65536 4096 False", "qb1 262144 65536 True"], ours);
        }

        // Closed: stored, in-use cleared, auto as each recorded, no leaked or doubly used cluster.
        Assert.Equal(["qb1 65536 auto", "qb2 4096 ", "ours 512 auto"], await QemuImgBitmapsAsync(img));
        Assert.Contains("No errors were found on the image.", (await Tools.RunAsync("qemu-img", "check", img)).Ok().Stdout, StringComparison.Ordinal);
        Assert.Contains("No errors were found on the image.", (await Tools.RunAsync("sharpblock", "img", "check", img)).Ok().Stdout, StringComparison.Ordinal);

        // QEMU reads the same bits back.
        await using (var qsd = await QemuStorageDaemon.StartAsync(dir.File("qsd.sock")))
        {
            await qsd.Client.ReturnAsync("blockdev-add", AddQcow2("n0", img));
            Assert.Equal(ours, await BitmapsAsync(qsd.Client, "n0"));
        }

        string copy = dir.File("copy.qcow2");
        (await Tools.RunAsync("qemu-img", "convert", "--bitmaps", "-O", "qcow2", img, copy)).Ok();
        Assert.Equal(["qb1 65536 auto", "qb2 4096 ", "ours 512 auto"], await QemuImgBitmapsAsync(copy));
    }

    [Fact]
    public async Task A_daemon_killed_with_the_image_open_leaves_bitmaps_both_sides_call_inconsistent()
    {
        using var dir = new TempDir();
        string img = dir.File("a.qcow2");
        string qmp = dir.File("qmp.sock");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", img, "8M")).Ok();
        (await Tools.RunAsync("qemu-img", "bitmap", "--add", img, "b0")).Ok();
        using (var p = Tools.StartSharpBlock("daemon", "--qmp", "unix:" + qmp, "--blockdev", $"driver=qcow2,node-name=n0,file.driver=file,file.filename={img}"))
        {
            try
            {
                await SocketWait.ForListenerAsync(qmp);
                await using (var c = await QmpTestClient.ConnectUnixAsync(qmp))
                {
                    await c.ReturnAsync("block-dirty-bitmap-add", "{\"node\":\"n0\",\"name\":\"b1\",\"persistent\":true}");
                    Assert.Equal(["b1 0 65536 True", "b0 0 65536 True"], await BitmapsAsync(c, "n0"));
                }
            }
            finally
            {
                p.Kill();
                p.WaitForExit();
            }
        }

        // b1 never reached the image; b0 stays marked in use.
        Assert.Equal(["b0 65536 in-use,auto"], await QemuImgBitmapsAsync(img));
        await using (var qsd = await QemuStorageDaemon.StartAsync(dir.File("qsd.sock")))
        {
            await qsd.Client.ReturnAsync("blockdev-add", AddQcow2("n0", img));
            Assert.Equal(["b0 0 65536 False inconsistent"], await BitmapsAsync(qsd.Client, "n0"));
            await qsd.Client.ReturnAsync("blockdev-del", "{\"node-name\":\"n0\"}");
        }

        await using (var d = await QmpHarness.StartAsync())
        {
            await d.Client.ReturnAsync("blockdev-add", AddQcow2("n0", img));
            Assert.Equal(["b0 0 65536 False inconsistent"], await BitmapsAsync(d.Client, "n0"));
            foreach (string verb in new[] { "clear", "enable", "disable" })
            {
                var (_, desc) = await d.Client.ErrorAsync("block-dirty-bitmap-" + verb, "{\"node\":\"n0\",\"name\":\"b0\"}");
                Assert.Equal("Bitmap 'b0' is inconsistent and cannot be used", desc);
            }

            await d.Client.ReturnAsync("block-dirty-bitmap-remove", "{\"node\":\"n0\",\"name\":\"b0\"}");
            Assert.Empty(await QemuImgBitmapsAsync(img));
        }

        Assert.Contains("No errors were found on the image.", (await Tools.RunAsync("qemu-img", "check", img)).Ok().Stdout, StringComparison.Ordinal);
    }
}
