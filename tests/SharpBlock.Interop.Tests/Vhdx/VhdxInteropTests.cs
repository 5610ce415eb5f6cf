using System.Text.Json;
using SharpBlock.Drivers;
using SharpBlock.Drivers.Format.Vhdx;
using SharpBlock.Graph;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Vhdx;

/// <summary>qemu's vhdx images read through us byte for byte; ours judged by qemu-img check and compare.</summary>
public class VhdxInteropTests
{
    /// <summary>Every subformat and option qemu-img takes.</summary>
    public static TheoryData<string> Variants => new()
    {
        "subformat=dynamic",
        "subformat=fixed",
        "subformat=dynamic,block_state_zero=off",
        "subformat=fixed,block_state_zero=off",
        "block_size=1M,log_size=2M",
        "block_size=32M,log_size=4M",
        "subformat=fixed,block_size=2M",
    };

    private const long Size = 20 << 20;

    /// <summary>A raw disk of random, text and zero MiBs (with a partial last MiB of random bytes).</summary>
    internal static byte[] MixedDisk(int mib, int seed)
    {
        var rnd = new Random(seed);
        var bytes = new byte[(mib << 20) - 4096];
        for (int m = 0; m < mib; m++)
        {
            var span = bytes.AsSpan(m << 20, Math.Min(1 << 20, bytes.Length - (m << 20)));
            switch (m % 3)
            {
                case 0:
                    rnd.NextBytes(span);
                    break;
                case 1:
                    for (int i = 0; i < span.Length; i++)
                        span[i] = (byte)"the quick brown fox jumps over the lazy dog\n"[i % 44];
                    break;
            }
        }

        return bytes;
    }

    private static async Task<(BlockGraph, BlockNode)> OpenAsync(string path, bool readOnly)
    {
        var g = new BlockGraph();
        return (g, await g.AddAsync(ImageFormats.ImageOptions(path, "vhdx", readOnly, "n0")));
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public async Task Images_qemu_creates_and_fills_read_byte_for_byte(string options)
    {
        using var dir = new TempDir();
        string img = dir.File("q.vhdx");
        await Tools.RunAsync("qemu-img", "create", "-q", "-f", "vhdx", "-o", options, img, Size.ToString(System.Globalization.CultureInfo.InvariantCulture)).ContinueWith(t => t.Result.Ok());
        (await Tools.RunAsync("qemu-io", "-f", "vhdx", "-c", "write -P 0xab 0 1M", "-c", "write -P 0x11 3M 5M", "-c", "write -z 4M 1M",
            "-c", "write -P 0x22 9437696 1536", "-c", $"write -P 0xcd {Size - 512} 512", img)).Ok();
        string theirs = dir.File("theirs.raw"), ours = dir.File("ours.raw");
        (await Tools.RunAsync("qemu-img", "convert", "-f", "vhdx", "-O", "raw", img, theirs)).Ok();
        // Probed, not named: the signature alone picks the format.
        (await Tools.RunAsync("sharpblock", "img", "convert", "-O", "raw", img, ours)).Ok();
        Assert.Equal(File.ReadAllBytes(theirs), File.ReadAllBytes(ours));

        // And through a node opened by the library, read in odd pieces.
        var expected = File.ReadAllBytes(theirs);
        var (g, node) = await OpenAsync(img, readOnly: true);
        await using (g)
        {
            Assert.Equal(Size, node.Length);
            var buf = new byte[expected.Length];
            for (int off = 0, n = 777_777; off < buf.Length; off += n)
                await node.ReadAsync(off, buf.AsMemory(off, Math.Min(n, buf.Length - off)));
            Assert.Equal(expected, buf);
        }
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public async Task Images_we_create_and_fill_pass_qemu_img_check_and_compare(string options)
    {
        using var dir = new TempDir();
        string img = dir.File("ours.vhdx");
        (await Tools.RunAsync("sharpblock", "img", "create", "-q", "-f", "vhdx", "-o", options, img, "20M")).Ok();
        Assert.Equal(0, (await Tools.RunAsync("qemu-img", "check", img)).Ok().ExitCode);

        var model = new byte[Size];
        var rnd = new Random(options.Length);
        var (g, node) = await OpenAsync(img, readOnly: false);
        await using (g)
        {
            for (int i = 0; i < 40; i++)
            {
                int off = rnd.Next((int)Size);
                int len = Math.Min(rnd.Next(1, 3 << 20), (int)Size - off);
                if (i % 5 == 4)
                {
                    await node.WriteZeroesAsync(off, len);
                    Array.Clear(model, off, len);
                    continue;
                }

                byte[] d = new byte[len];
                rnd.NextBytes(d);
                await node.WriteAsync(off, d);
                d.CopyTo(model, off);
            }

            await node.WriteAsync(Size - 512, Enumerable.Repeat((byte)0xee, 512).ToArray());
            model.AsSpan((int)Size - 512).Fill(0xee);
        }

        var check = await Tools.RunAsync("qemu-img", "check", img);
        Assert.True(check.ExitCode == 0, check.Stdout + check.Stderr);
        string modelFile = dir.File("model.raw");
        await File.WriteAllBytesAsync(modelFile, model);
        Assert.Equal(0, (await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "vhdx", modelFile, img)).Ok().ExitCode);
        Assert.Equal(0, (await Tools.RunAsync("qemu-io", "-f", "vhdx", "-c", $"read -P 0xee {Size - 512} 512", img)).Ok().ExitCode);
    }

    [Theory]
    [InlineData("subformat=dynamic")]
    [InlineData("subformat=fixed,block_size=1M")]
    [InlineData("subformat=dynamic,block_state_zero=off,block_size=4M")]
    public async Task Convert_from_a_mixed_raw_disk_both_ways_and_round_trip_through_qcow2(string options)
    {
        using var dir = new TempDir();
        string raw = dir.File("mixed.raw");
        byte[] bytes = MixedDisk(12, 3);
        await File.WriteAllBytesAsync(raw, bytes);
        string vhdx = dir.File("a.vhdx"), qcow2 = dir.File("b.qcow2"), back = dir.File("c.vhdx"), end = dir.File("end.raw");
        (await Tools.RunAsync("sharpblock", "img", "convert", "-f", "raw", "-O", "vhdx", "-o", options, raw, vhdx)).Ok();
        Assert.Equal(0, (await Tools.RunAsync("qemu-img", "check", vhdx)).Ok().ExitCode);
        Assert.Contains("identical", (await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "vhdx", raw, vhdx)).Ok().Stdout, StringComparison.Ordinal);

        (await Tools.RunAsync("sharpblock", "img", "convert", "-O", "qcow2", vhdx, qcow2)).Ok();
        (await Tools.RunAsync("sharpblock", "img", "convert", "-O", "vhdx", qcow2, back)).Ok();
        (await Tools.RunAsync("sharpblock", "img", "convert", "-O", "raw", back, end)).Ok();
        Assert.Equal(0, (await Tools.RunAsync("qemu-img", "check", back)).Ok().ExitCode);
        Assert.Equal(bytes, File.ReadAllBytes(end)[..bytes.Length]);
        Assert.Equal(0, (await Tools.RunAsync("sharpblock", "img", "compare", raw, back)).ExitCode);

        // qemu-img converting our image and ours converting qemu-img's agree too.
        string theirs = dir.File("theirs.vhdx"), fromTheirs = dir.File("from-theirs.raw");
        (await Tools.RunAsync("qemu-img", "convert", "-f", "vhdx", "-O", "vhdx", "-o", options, vhdx, theirs)).Ok();
        (await Tools.RunAsync("sharpblock", "img", "convert", "-O", "raw", theirs, fromTheirs)).Ok();
        Assert.Equal(bytes, File.ReadAllBytes(fromTheirs)[..bytes.Length]);
    }

    [Theory]
    [InlineData("subformat=dynamic")]
    [InlineData("subformat=fixed,block_size=1M")]
    public async Task Info_and_map_say_what_qemu_img_says(string options)
    {
        using var dir = new TempDir();
        string img = dir.File("i.vhdx");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "vhdx", "-o", options, img, "20M")).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "vhdx", "-c", "write -P 1 0 3M", img)).Ok();
        foreach (string[] args in new[] { new[] { "info", "--output=json", img }, ["info", img], ["map", "--output=json", img], ["check", "--output=json", img], ["check", img] })
        {
            var q = await Tools.RunAsync("qemu-img", args);
            var s = await Tools.RunAsync("sharpblock", ["img", .. args]);
            Assert.Equal(q.ExitCode, s.ExitCode);
            if (args.Contains("--output=json"))
                Assert.Equal(Canonical(q.Stdout), Canonical(s.Stdout));
            else
                Assert.Equal(q.Stdout, s.Stdout);
        }
    }

    /// <summary>JSON with object members sorted, so member order does not count.</summary>
    internal static string Canonical(string json)
    {
        static string Walk(JsonElement e) => e.ValueKind switch
        {
            JsonValueKind.Object => "{" + string.Join(",", e.EnumerateObject().OrderBy(p => p.Name, StringComparer.Ordinal).Select(p => p.Name + ":" + Walk(p.Value))) + "}",
            JsonValueKind.Array => "[" + string.Join(",", e.EnumerateArray().Select(Walk)) + "]",
            _ => e.GetRawText(),
        };
        using var doc = JsonDocument.Parse(json);
        return Walk(doc.RootElement);
    }

    [Theory]
    [InlineData("block_size=3M")]
    [InlineData("log_size=5G")]
    [InlineData("subformat=foo")]
    [InlineData("size=65T")]
    public async Task Creation_refusals_match_qemu_img(string options)
    {
        using var dir = new TempDir();
        var q = await Tools.RunAsync("qemu-img", "create", "-f", "vhdx", "-o", options + (options.StartsWith("size", StringComparison.Ordinal) ? "" : ",size=10M"), dir.File("q.vhdx"));
        var s = await Tools.RunAsync("sharpblock", "img", "create", "-f", "vhdx", "-o", options + (options.StartsWith("size", StringComparison.Ordinal) ? "" : ",size=10M"), dir.File("s.vhdx"));
        Assert.Equal(1, q.ExitCode);
        Assert.Equal(q.Stdout.Replace("q.vhdx", "s.vhdx", StringComparison.Ordinal), s.Stdout);
        string reason = s.OneLineError();
        // qemu-img puts the file name before a driver's refusal; our image tool (for every format) does not.
        Assert.Equal(q.Stderr.Trim().Replace($"qemu-img: {dir.File("q.vhdx")}: ", "", StringComparison.Ordinal), reason);
    }

    [Theory]
    [InlineData("block_size=512M")]
    [InlineData("log_size=1000,block_size=1")]
    [InlineData("size=1000")]
    [InlineData("size=0")]
    [InlineData("size=3000001,subformat=fixed,block_size=2M")]
    public async Task Creation_rounds_as_qemu_img(string options)
    {
        using var dir = new TempDir();
        string q = dir.File("q.vhdx"), s = dir.File("s.vhdx");
        var qr = (await Tools.RunAsync("qemu-img", "create", "-f", "vhdx", "-o", options + (options.StartsWith("size", StringComparison.Ordinal) ? "" : ",size=10M"), q)).Ok();
        var sr = (await Tools.RunAsync("sharpblock", "img", "create", "-f", "vhdx", "-o", options + (options.StartsWith("size", StringComparison.Ordinal) ? "" : ",size=10M"), s)).Ok();
        Assert.Equal(qr.Stdout.Replace(q, s, StringComparison.Ordinal), sr.Stdout);
        Assert.Equal(new FileInfo(q).Length, new FileInfo(s).Length);
        var qi = await Tools.RunAsync("qemu-img", "info", "--output=json", q);
        var si = await Tools.RunAsync("qemu-img", "info", "--output=json", s);
        using var a = JsonDocument.Parse(qi.Stdout);
        using var b = JsonDocument.Parse(si.Stdout);
        Assert.Equal(a.RootElement.GetProperty("virtual-size").GetInt64(), b.RootElement.GetProperty("virtual-size").GetInt64());
        Assert.Equal(a.RootElement.GetProperty("cluster-size").GetInt64(), b.RootElement.GetProperty("cluster-size").GetInt64());
    }

    [Fact]
    public async Task Measure_and_resize_are_refused_as_qemu_img_refuses_them()
    {
        using var dir = new TempDir();
        string img = dir.File("r.vhdx");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "vhdx", img, "10M")).Ok();
        var qm = await Tools.RunAsync("qemu-img", "measure", "-O", "vhdx", "--size", "1G");
        var sm = await Tools.RunAsync("sharpblock", "img", "measure", "-O", "vhdx", "--size", "1G");
        Assert.Equal(qm.Stderr.Replace("qemu-img: ", "", StringComparison.Ordinal).Trim(), sm.OneLineError());
        var qr = await Tools.RunAsync("qemu-img", "resize", img, "20M");
        var sr = await Tools.RunAsync("sharpblock", "img", "resize", img, "20M");
        Assert.Equal(qr.Stderr.Replace("qemu-img: ", "", StringComparison.Ordinal).Trim(), sr.OneLineError());
        Assert.Equal(10 << 20, JsonDocument.Parse((await Tools.RunAsync("qemu-img", "info", "--output=json", img)).Stdout).RootElement.GetProperty("virtual-size").GetInt64());
    }

    [Fact]
    public async Task A_log_left_by_a_crash_is_refused_read_only_and_replayed_by_check_r_all_as_qemu_does()
    {
        using var dir = new TempDir();
        string ours = dir.File("ours.vhdx"), theirs = dir.File("theirs.vhdx");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "vhdx", "-o", "block_size=1M", ours, "16M")).Ok();
        byte fill = VhdxLogCrafter.LeaveReplayableLog(ours);
        File.Copy(ours, theirs);
        string oursHuman = dir.File("ours-human.vhdx"), theirsHuman = dir.File("theirs-human.vhdx");
        File.Copy(ours, oursHuman);
        File.Copy(ours, theirsHuman);
        var qh = await Tools.RunAsync("qemu-img", "check", "-r", "all", theirsHuman);
        var sh = await Tools.RunAsync("sharpblock", "img", "check", "-r", "all", oursHuman);
        Assert.Equal(qh.ExitCode, sh.ExitCode);
        Assert.Equal(qh.Stdout, sh.Stdout);

        var qi = await Tools.RunAsync("qemu-img", "info", theirs);
        var si = await Tools.RunAsync("sharpblock", "img", "info", ours);
        Assert.Equal(1, qi.ExitCode);
        Assert.Equal(qi.Stderr.Replace("qemu-img: ", "sharpblock: ", StringComparison.Ordinal).Replace(theirs, ours, StringComparison.Ordinal), si.Stderr);
        si.OneLineError(lines: 3);

        var qc = await Tools.RunAsync("qemu-img", "check", "-r", "all", "--output=json", theirs);
        var sc = await Tools.RunAsync("sharpblock", "img", "check", "-r", "all", "--output=json", ours);
        Assert.Equal(qc.ExitCode, sc.ExitCode);
        Assert.Equal(Canonical(qc.Stdout.Replace(theirs, ours, StringComparison.Ordinal)), Canonical(sc.Stdout));

        Assert.Equal(0, (await Tools.RunAsync("qemu-img", "check", ours)).Ok().ExitCode);
        (await Tools.RunAsync("qemu-io", "-f", "vhdx", "-c", $"read -P {fill} 0 1M", "-c", "read -P 0 1M 15M", ours)).Ok();
        Assert.Equal(0, (await Tools.RunAsync("qemu-img", "compare", ours, theirs)).ExitCode);
    }

    [Fact]
    public async Task A_read_write_open_replays_the_log_and_the_headers_stay_valid_for_qemu()
    {
        using var dir = new TempDir();
        string img = dir.File("rw.vhdx");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "vhdx", "-o", "block_size=1M", img, "16M")).Ok();
        byte fill = VhdxLogCrafter.LeaveReplayableLog(img);
        var (g, node) = await OpenAsync(img, readOnly: false);
        await using (g)
        {
            Assert.True(((VhdxNode)node).LogReplayedOnOpen);
            var buf = new byte[4096];
            await node.ReadAsync(0, buf);
            Assert.All(buf, b => Assert.Equal(fill, b));
            await node.WriteAsync(5 << 20, new byte[] { 1, 2, 3, 4 });
        }

        Assert.Equal(0, (await Tools.RunAsync("qemu-img", "check", img)).Ok().ExitCode);
        (await Tools.RunAsync("qemu-io", "-f", "vhdx", "-c", $"read -P {fill} 0 1M", "-c", "read -v 5M 4", img)).Ok();
    }

    [Fact]
    public async Task A_differencing_image_is_refused_as_qemu_refuses_it()
    {
        using var dir = new TempDir();
        string img = dir.File("diff.vhdx");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "vhdx", img, "16M")).Ok();
        // The file parameters item (block size, then flags) sits 64 KiB into the metadata region; the metadata
        // region is not checksummed, so setting HasParent is a one-byte change.
        byte[] d = File.ReadAllBytes(img);
        long metadata = System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(d.AsSpan((192 * 1024) + 16 + 32 + 16));
        d[metadata + (64 * 1024) + 4] |= 2;
        File.WriteAllBytes(img, d);
        var q = await Tools.RunAsync("qemu-img", "info", img);
        var s = await Tools.RunAsync("sharpblock", "img", "info", img);
        Assert.Equal(1, q.ExitCode);
        Assert.Contains($"Could not open '{img}'", s.OneLineError(), StringComparison.Ordinal);
    }
}

