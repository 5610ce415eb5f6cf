using System.Text.Json;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Qcow2;

/// <summary>`sharpblock img` next to qemu-img: same output lines, same verdicts, same exit codes.</summary>
public class ImgCommandTests
{
    [Theory]
    [InlineData("qcow2", new string[0], "4M")]
    [InlineData("qcow2", new[] { "-o", "compat=0.10,cluster_size=512" }, "1M")]
    [InlineData("qcow2", new[] { "-o", "preallocation=metadata,lazy_refcounts=on,refcount_bits=64" }, "1M")]
    [InlineData("raw", new string[0], "1M")]
    public async Task Create_prints_what_qemu_img_prints_and_makes_an_image_it_accepts(string fmt, string[] opts, string size)
    {
        using var dir = new TempDir();
        var ours = new List<string> { "img", "create", "-f", fmt };
        var theirs = new List<string> { "create", "-f", fmt };
        ours.AddRange(opts);
        theirs.AddRange(opts);
        ours.AddRange(["x.img", size]);
        theirs.AddRange([dir.File("q.img"), size]);
        string oldCwd = Environment.CurrentDirectory;
        var a = await Tools.RunAsync("sharpblock", ours.Select(s => s == "x.img" ? dir.File("x.img") : s));
        var b = await Tools.RunAsync("qemu-img", theirs);
        a.Ok();
        b.Ok();
        Assert.Equal(b.Stdout.Replace(dir.File("q.img"), "F", StringComparison.Ordinal), a.Stdout.Replace(dir.File("x.img"), "F", StringComparison.Ordinal));
        if (fmt == "qcow2")
            (await Tools.RunAsync("qemu-img", "check", dir.File("x.img"))).Ok();
        var infoA = JsonDocument.Parse((await Tools.RunAsync("qemu-img", "info", "--output=json", dir.File("x.img"))).Ok().Stdout);
        var infoB = JsonDocument.Parse((await Tools.RunAsync("qemu-img", "info", "--output=json", dir.File("q.img"))).Ok().Stdout);
        Assert.Equal(infoB.RootElement.GetProperty("virtual-size").GetInt64(), infoA.RootElement.GetProperty("virtual-size").GetInt64());
        _ = oldCwd;
    }

    [Fact]
    public async Task Create_with_backing_takes_the_backing_size_and_records_its_format()
    {
        using var dir = new TempDir();
        (await Tools.RunAsync("qemu-img", "create", "-f", "qcow2", dir.File("b.qcow2"), "3M")).Ok();
        var r = await Tools.RunAsync("sharpblock", "img", "create", "-f", "qcow2", "-b", "b.qcow2", "-F", "qcow2", dir.File("t.qcow2"));
        r.Ok();
        Assert.Contains("backing_file=b.qcow2 backing_fmt=qcow2", r.Stdout, StringComparison.Ordinal);
        var info = (await Tools.RunAsync("qemu-img", "info", "--output=json", dir.File("t.qcow2"))).Ok();
        using var doc = JsonDocument.Parse(info.Stdout);
        Assert.Equal(3 << 20, doc.RootElement.GetProperty("virtual-size").GetInt64());
        Assert.Equal("qcow2", doc.RootElement.GetProperty("backing-filename-format").GetString());
        Assert.Equal("b.qcow2", doc.RootElement.GetProperty("backing-filename").GetString());
    }

    [Theory]
    [InlineData("leaks")]
    [InlineData("all")]
    public async Task Repairing_leaks_prints_each_repair_as_qemu_img_does(string mode)
    {
        using var dir = new TempDir();
        string img = dir.File("leak.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", img, "4M")).Ok();
        (await Tools.RunAsync("qemu-io", "-c", "write -P 1 0 64k", "-c", "write -P 2 1M 64k", img)).Ok();
        // Unhook guest cluster 0 from its L2 table: its data cluster is now referenced by nothing (a leak).
        using (var f = new FileStream(img, FileMode.Open))
        {
            var h = new byte[48];
            f.ReadExactly(h);
            f.Position = (long)System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(h.AsSpan(40));
            var l1 = new byte[8];
            f.ReadExactly(l1);
            f.Position = (long)(System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(l1) & 0x00fffffffffffe00);
            f.Write(new byte[8]);
        }

        string theirs = dir.File("theirs.qcow2");
        File.Copy(img, theirs);
        var q = await Tools.RunAsync("qemu-img", "check", "-r", mode, theirs);
        var o = await Tools.RunAsync("sharpblock", "img", "check", "-r", mode, img);
        Assert.Contains("Repairing cluster", q.Stderr, StringComparison.Ordinal);
        Assert.Equal((q.ExitCode, q.Stdout, q.Stderr), (o.ExitCode, o.Stdout, o.Stderr));
        (await Tools.RunAsync("qemu-img", "check", img)).Ok();
    }

    [Fact]
    public async Task Info_human_output_matches_qemu_img()
    {
        using var dir = new TempDir();
        (await Tools.RunAsync("qemu-img", "create", "-f", "qcow2", dir.File("b.qcow2"), "4M")).Ok();
        (await Tools.RunAsync("qemu-img", "create", "-f", "qcow2", "-b", "b.qcow2", "-F", "qcow2", dir.File("t.qcow2"))).Ok();
        (await Tools.RunAsync("qemu-io", "-c", "write 0 64k", dir.File("t.qcow2"))).Ok();
        foreach (var args in new[] { new[] { "info", dir.File("t.qcow2") }, new[] { "info", "--backing-chain", dir.File("t.qcow2") } })
        {
            var theirs = (await Tools.RunAsync("qemu-img", args)).Ok();
            var ours = (await Tools.RunAsync("sharpblock", new[] { "img" }.Concat(args))).Ok();
            Assert.Equal(theirs.Stdout, ours.Stdout);
        }

        var j = (await Tools.RunAsync("sharpblock", "img", "info", "--output=json", dir.File("t.qcow2"))).Ok();
        using var doc = JsonDocument.Parse(j.Stdout);
        Assert.Equal("qcow2", doc.RootElement.GetProperty("format").GetString());
        Assert.Equal(65536, doc.RootElement.GetProperty("cluster-size").GetInt64());
        Assert.Equal("1.1", doc.RootElement.GetProperty("format-specific").GetProperty("data").GetProperty("compat").GetString());
    }

    [Fact]
    public async Task Map_matches_qemu_img_for_raw_and_qcow2()
    {
        using var dir = new TempDir();
        string raw = dir.PatternFile("r.raw", 1 << 20);
        using (var fs = new FileStream(raw, FileMode.Open))
            fs.SetLength(4 << 20);
        (await Tools.RunAsync("qemu-img", "convert", "-O", "qcow2", raw, dir.File("c.qcow2"))).Ok();
        (await Tools.RunAsync("qemu-img", "convert", "-c", "-O", "qcow2", raw, dir.File("z.qcow2"))).Ok();
        (await Tools.RunAsync("qemu-img", "create", "-f", "qcow2", "-o", "preallocation=metadata", dir.File("p.qcow2"), "2M")).Ok();
        (await Tools.RunAsync("qemu-io", "-c", "write -P 9 64k 4k", dir.File("p.qcow2"))).Ok();
        foreach (var f in new[] { raw, dir.File("c.qcow2"), dir.File("z.qcow2"), dir.File("p.qcow2") })
        {
            foreach (var output in new[] { "--output=json", "--output=human" })
            {
                var theirs = await Tools.RunAsync("qemu-img", "map", output, f);
                var ours = await Tools.RunAsync("sharpblock", "img", "map", output, f);
                Assert.Equal(theirs.ExitCode, ours.ExitCode);
                Assert.Equal(theirs.Stdout, ours.Stdout);
            }
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Convert_keeps_holes_and_content(bool compress)
    {
        using var dir = new TempDir();
        string raw = dir.File("s.raw");
        var data = new byte[6 << 20];
        new Random(2).NextBytes(data.AsSpan(0, 300_000));
        for (int i = 3 << 20; i < (4 << 20); i++)
            data[i] = (byte)(i / 1000);
        await File.WriteAllBytesAsync(raw, data);
        string dst = dir.File("d.qcow2");
        var args = new List<string> { "img", "convert", "-p", "-f", "raw", "-O", "qcow2" };
        if (compress)
            args.Add("-c");
        args.AddRange([raw, dst]);
        var r = await Tools.RunAsync("sharpblock", args);
        r.Ok();
        Assert.Contains("(100.00/100%)", r.Stdout, StringComparison.Ordinal);
        // Redrawn with carriage returns (on a pipe too, as qemu-img), and the figure never goes back even
        // though parallel workers finish out of order.
        Assert.EndsWith("\r\n", r.Stdout, StringComparison.Ordinal);
        var figures = r.Stdout.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries)
            .Select(l => double.Parse(l.Trim().TrimStart('(').Split('/')[0], System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(figures.Order(), figures);
        (await Tools.RunAsync("qemu-img", "check", dst)).Ok();
        (await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "qcow2", raw, dst)).Ok();
        var map = (await Tools.RunAsync("qemu-img", "map", "--output=json", dst)).Ok();
        Assert.Contains("\"data\": false", map.Stdout, StringComparison.Ordinal);
        if (compress)
        {
            var check = (await Tools.RunAsync("sharpblock", "img", "check", "--output=json", dst)).Ok();
            Assert.Contains("compressed-clusters", check.Stdout, StringComparison.Ordinal);
        }

        string back = dir.File("back.raw");
        (await Tools.RunAsync("sharpblock", "img", "convert", "-O", "raw", dst, back)).Ok();
        byte[] backBytes = await File.ReadAllBytesAsync(back);
        Assert.True(data.AsSpan().SequenceEqual(backBytes));
    }

    [Fact]
    public async Task Unsupported_feature_error_names_the_feature()
    {
        using var dir = new TempDir();
        string img = dir.File("f.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-f", "qcow2", img, "1M")).Ok();
        using (var fs = new FileStream(img, FileMode.Open))
        {
            fs.Position = 72;
            fs.Write([0, 0, 0, 0, 0, 0x10, 0, 0]);
        }

        var r = await Tools.RunAsync("sharpblock", "img", "info", img);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("Unsupported qcow2 feature(s): Unknown incompatible feature: 100000", r.Stderr, StringComparison.Ordinal);
    }
}
