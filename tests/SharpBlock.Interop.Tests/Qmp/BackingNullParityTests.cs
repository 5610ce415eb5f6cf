using System.Text.Json;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Qmp;

/// <summary>
/// blockdev-add's `backing` as management software of the -blockdev era sends it: libvirt opens every layer
/// itself and adds the top with `"backing": null` (or a node name), so the header's backing file is never
/// opened behind its back. The seed spells "none" as the empty reference; both forms, and a node by name or
/// inline, must open the same graph as qemu-storage-daemon 7.2 opens, with the same replies and refusals.
/// </summary>
public class BackingNullParityTests
{
    private static async Task<List<string>> RunAsync(QmpTestClient c, string baseImg, string overlay)
    {
        var seen = new List<string>();
        async Task Add(string backing)
        {
            string args = $"{{\"driver\":\"qcow2\",\"node-name\":\"ov\",\"read-only\":true,\"file\":{{\"driver\":\"file\",\"filename\":\"{overlay}\"}}"
                + (backing.Length > 0 ? ",\"backing\":" + backing : "") + "}";
            var reply = await c.ExecuteAsync("blockdev-add", args);
            seen.Add("blockdev-add backing=" + backing + " " + QmpCanonical.Of(reply));
            if (reply.TryGetProperty("error", out _))
                return;
            // What was opened: how deep the chain under the overlay is, and the name its header records. (7.2
            // names a node opened with backing null by a json: filename and drops BlockDeviceInfo's
            // backing_file; the seed's names stay, so those two are not compared.)
            foreach (var n in (await c.ReturnAsync("query-named-block-nodes")).EnumerateArray())
            {
                if (n.GetProperty("node-name").GetString() != "ov")
                    continue;
                var image = n.GetProperty("image");
                seen.Add("  depth " + n.GetProperty("backing_file_depth").GetInt64() + " header " + image.GetProperty("backing-filename").GetString()
                    + " layers " + Layers(image));
            }

            seen.Add("blockdev-del " + QmpCanonical.Of(await c.ExecuteAsync("blockdev-del", "{\"node-name\":\"ov\"}")));
        }

        await c.ReturnAsync("blockdev-add", $"{{\"driver\":\"raw\",\"node-name\":\"base\",\"read-only\":true,\"file\":{{\"driver\":\"file\",\"filename\":\"{baseImg}\"}}}}");
        await Add("");
        await Add("null");
        await Add("\"\"");
        await Add("\"base\"");
        await Add($"{{\"driver\":\"raw\",\"file\":{{\"driver\":\"file\",\"filename\":\"{baseImg}\"}}}}");
        await Add("\"nope\"");
        await Add("5");
        await Add("true");
        await Add("[]");
        return seen;
    }

    /// <summary>The backing chain as query-named-block-nodes describes it: each layer's format.</summary>
    private static string Layers(JsonElement image)
    {
        var formats = new List<string>();
        for (var i = image; ; i = i.GetProperty("backing-image"))
        {
            formats.Add(i.GetProperty("format").GetString()!);
            if (!i.TryGetProperty("backing-image", out _))
                return string.Join(" > ", formats);
        }
    }

    [Fact]
    public async Task Backing_null_a_name_or_an_empty_reference_opens_what_qemu_storage_daemon_opens()
    {
        using var dir = new TempDir();
        string baseImg = dir.File("base.raw");
        string overlay = dir.File("ov.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "raw", baseImg, "1M")).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 0x5a 0 64k", baseImg)).Ok();
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", "-b", baseImg, "-F", "raw", overlay)).Ok();

        List<string> theirs;
        await using (var qsd = await QemuStorageDaemon.StartAsync(dir.File("qsd.sock")))
            theirs = await RunAsync(qsd.Client, baseImg, overlay);
        List<string> ours;
        await using (var d = await QmpHarness.StartAsync())
            ours = await RunAsync(d.Client, baseImg, overlay);

        Assert.Equal(theirs, ours);
        // The comparison means something: the header's file is opened when nothing is said, and not for null.
        Assert.Equal(3, ours.Count(l => l == "  depth 1 header " + baseImg + " layers qcow2 > raw"));
        Assert.Equal(2, ours.Count(l => l == "  depth 0 header " + baseImg + " layers qcow2"));
    }
}
