using System.Text.Json;
using System.Text.Json.Nodes;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Vmdk;

/// <summary>Backing chains (parentFileNameHint, the CID check) and img info/map/check output against qemu-img's.</summary>
public class VmdkChainAndInfoTests
{
    /// <summary>JSON with its keys sorted, so two writers' key orders do not matter, only their content.</summary>
    internal static string Canonical(string json) => Sort(JsonNode.Parse(json))!.ToJsonString();

    private static JsonNode? Sort(JsonNode? n) => n switch
    {
        JsonObject o => new JsonObject(o.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => KeyValuePair.Create(p.Key, Sort(p.Value)))),
        JsonArray a => new JsonArray(a.Select(Sort).ToArray()),
        null => null,
        _ => n.DeepClone(),
    };

    [Fact]
    public async Task A_child_we_create_reads_through_to_its_parent_in_qemu_and_in_us()
    {
        using var dir = new TempDir();
        string baseImg = dir.File("base.vmdk"), child = dir.File("child.vmdk");
        (await Tools.RunAsync("qemu-img", "create", "-f", "vmdk", baseImg, "4M")).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "vmdk", "-c", "write -P 0x61 0 1M", baseImg)).Ok();
        var create = (await Tools.RunAsync("sharpblock", "img", "create", "-f", "vmdk", "-b", "base.vmdk", "-F", "vmdk", child)).Ok();
        Assert.Contains("backing_file=base.vmdk backing_fmt=vmdk compat6=off hwversion=undefined", create.Stdout, StringComparison.Ordinal);
        using (var info = JsonDocument.Parse((await Tools.RunAsync("qemu-img", "info", "--output=json", child)).Ok().Stdout))
        {
            Assert.Equal("base.vmdk", info.RootElement.GetProperty("backing-filename").GetString());
            Assert.Equal("vmdk", info.RootElement.GetProperty("backing-filename-format").GetString());
        }

        // A partial write into the child copies the rest of the grain from the parent.
        await WriteAsync(child, 65536, 4096, 0x62);
        (await Tools.RunAsync("qemu-img", "check", child)).Ok();
        string q = dir.File("q.raw"), o = dir.File("o.raw");
        (await Tools.RunAsync("qemu-img", "convert", "-O", "raw", child, q)).Ok();
        (await Tools.RunAsync("sharpblock", "img", "convert", "-O", "raw", child, o)).Ok();
        byte[] want = await File.ReadAllBytesAsync(q);
        Assert.Equal(want, await File.ReadAllBytesAsync(o));
        Assert.Equal(0x61, want[0]);
        Assert.Equal(0x62, want[65536]);
        Assert.Equal(0x61, want[65536 + 4096]);

        // A write to the parent gives it a new CID: both tools now refuse to read through the child.
        (await Tools.RunAsync("qemu-io", "-f", "vmdk", "-c", "write -P 0x63 2M 4k", baseImg)).Ok();
        Assert.NotEqual(0, (await Tools.RunAsync("qemu-img", "convert", "-O", "raw", child, dir.File("q2.raw"))).ExitCode);
        var ours = await Tools.RunAsync("sharpblock", "img", "convert", "-O", "raw", child, dir.File("o2.raw"));
        Assert.Contains("does not match the CID of its backing image", ours.OneLineError(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_first_write_after_open_gives_a_new_CID()
    {
        using var dir = new TempDir();
        string img = dir.File("a.vmdk");
        (await Tools.RunAsync("qemu-img", "create", "-f", "vmdk", img, "1M")).Ok();
        long Cid(string json) => JsonDocument.Parse(json).RootElement.GetProperty("format-specific").GetProperty("data").GetProperty("cid").GetInt64();
        long before = Cid((await Tools.RunAsync("qemu-img", "info", "--output=json", img)).Ok().Stdout);
        await using (var g = new SharpBlock.Graph.BlockGraph())
        {
            var node = await g.AddAsync(SharpBlock.Drivers.ImageFormats.ImageOptions(img, "vmdk", readOnly: false, "n0"));
            await node.ReadAsync(0, new byte[4096]);
        }

        Assert.Equal(before, Cid((await Tools.RunAsync("qemu-img", "info", "--output=json", img)).Ok().Stdout));
        await WriteAsync(img, 0, 4096, 1);
        await WriteAsync(img, 65536, 4096, 2);
        long after = Cid((await Tools.RunAsync("qemu-img", "info", "--output=json", img)).Ok().Stdout);
        Assert.NotEqual(before, after);
        (await Tools.RunAsync("qemu-img", "check", img)).Ok();
    }

    /// <summary>One write through our driver, as a separate open (so the CID changes once per call).</summary>
    private static async Task WriteAsync(string img, long offset, int length, byte pattern)
    {
        await using var g = new SharpBlock.Graph.BlockGraph();
        var node = await g.AddAsync(SharpBlock.Drivers.ImageFormats.ImageOptions(img, "vmdk", readOnly: false, "n0"));
        byte[] d = new byte[length];
        Array.Fill(d, pattern);
        await node.WriteAsync(offset, d);
    }

    public static readonly TheoryData<string> Layouts =
    [
        "subformat=monolithicSparse", "subformat=monolithicFlat", "subformat=twoGbMaxExtentSparse", "subformat=twoGbMaxExtentFlat",
        "subformat=streamOptimized", "zeroed_grain=on",
    ];

    [Theory]
    [MemberData(nameof(Layouts))]
    public async Task Info_json_and_human_and_map_match_qemu_img(string options)
    {
        using var dir = new TempDir();
        string raw = dir.File("src.raw");
        await File.WriteAllBytesAsync(raw, VmdkInteropTests.MixedDisk(3, 9));
        string img = dir.File("i.vmdk");
        (await Tools.RunAsync("qemu-img", "convert", "-O", "vmdk", "-o", options, raw, img)).Ok();
        if (!options.Contains("stream", StringComparison.Ordinal))
            (await Tools.RunAsync("qemu-io", "-f", "vmdk", "-c", "write -z 0 128k", img)).Ok();
        var theirs = (await Tools.RunAsync("qemu-img", "info", "--output=json", img)).Ok().Stdout;
        var ours = (await Tools.RunAsync("sharpblock", "img", "info", "--output=json", img)).Ok().Stdout;
        Assert.Equal(Canonical(theirs), Canonical(ours));
        Assert.Equal((await Tools.RunAsync("qemu-img", "info", img)).Ok().Stdout, (await Tools.RunAsync("sharpblock", "img", "info", img)).Ok().Stdout);
        Assert.Equal(Canonical((await Tools.RunAsync("qemu-img", "map", "--output=json", img)).Ok().Stdout),
            Canonical((await Tools.RunAsync("sharpblock", "img", "map", "--output=json", img)).Ok().Stdout));
        Assert.Equal(Canonical((await Tools.RunAsync("qemu-img", "check", "--output=json", img)).Ok().Stdout),
            Canonical((await Tools.RunAsync("sharpblock", "img", "check", "--output=json", img)).Ok().Stdout));
        Assert.Equal((await Tools.RunAsync("qemu-img", "check", img)).Ok().Stdout, (await Tools.RunAsync("sharpblock", "img", "check", img)).Ok().Stdout);
    }

    [Fact]
    public async Task Images_are_probed_without_f()
    {
        using var dir = new TempDir();
        foreach (string sub in new[] { "monolithicSparse", "monolithicFlat", "twoGbMaxExtentFlat", "streamOptimized" })
        {
            string img = dir.File(sub + ".vmdk");
            (await Tools.RunAsync("qemu-img", "create", "-f", "vmdk", "-o", "subformat=" + sub, img, "1M")).Ok();
            using var info = JsonDocument.Parse((await Tools.RunAsync("sharpblock", "img", "info", "--output=json", img)).Ok().Stdout);
            Assert.Equal("vmdk", info.RootElement.GetProperty("format").GetString());
        }
    }

    [Fact]
    public async Task Resize_and_measure_are_refused_as_qemu_img_refuses_them()
    {
        using var dir = new TempDir();
        string img = dir.File("a.vmdk");
        (await Tools.RunAsync("qemu-img", "create", "-f", "vmdk", img, "1M")).Ok();
        var q = await Tools.RunAsync("qemu-img", "resize", img, "2M");
        var o = await Tools.RunAsync("sharpblock", "img", "resize", img, "2M");
        Assert.Contains("Image format driver does not support resize", q.Stderr, StringComparison.Ordinal);
        Assert.Contains("Image format driver does not support resize", o.OneLineError(), StringComparison.Ordinal);
        var qm = await Tools.RunAsync("qemu-img", "measure", "-O", "vmdk", "--size", "1M");
        var om = await Tools.RunAsync("sharpblock", "img", "measure", "-O", "vmdk", "--size", "1M");
        Assert.Contains("Block driver 'vmdk' does not support size measurement", qm.Stderr, StringComparison.Ordinal);
        Assert.Contains("Block driver 'vmdk' does not support size measurement", om.OneLineError(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Check_reports_a_grain_past_the_end_of_the_file_as_qemu_img_does()
    {
        using var dir = new TempDir();
        string img = dir.File("a.vmdk");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "vmdk", img, "4M")).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "vmdk", "-c", "write -P 1 0 64k", img)).Ok();
        byte[] f = await File.ReadAllBytesAsync(img);
        var h = SharpBlock.Drivers.Format.Vmdk.VmdkSparseHeader.Read(f);
        foreach (ulong dirSector in new[] { h.GdOffset, h.RgdOffset })
        {
            int gt = (int)System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(f.AsSpan((int)dirSector * 512));
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(f.AsSpan((gt * 512) + (16 * 4)), 0x100000);
        }

        await File.WriteAllBytesAsync(img, f);
        var q = await Tools.RunAsync("qemu-img", "check", img);
        var o = await Tools.RunAsync("sharpblock", "img", "check", img);
        Assert.Equal(1, q.ExitCode);
        Assert.Equal(q.ExitCode, o.ExitCode);
        Assert.Equal("ERROR: cluster offset for sector 2048 points after EOF", q.Stderr.Split('\n')[0]);
        Assert.Equal(q.Stderr.Replace("qemu-img: ", "", StringComparison.Ordinal), o.Stderr.Replace("sharpblock: ", "", StringComparison.Ordinal));
        var r = await Tools.RunAsync("qemu-img", "check", "-r", "all", img);
        Assert.Contains("This image format does not support checks", r.Stderr, StringComparison.Ordinal);
        Assert.Equal(63, r.ExitCode);
        Assert.Contains("This image format does not support checks", (await Tools.RunAsync("sharpblock", "img", "check", "-r", "all", img)).OneLineError(exitCode: 63), StringComparison.Ordinal);
    }
}
