using System.Text.Json;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Qcow2;

/// <summary>
/// `img amend -o compat=0.10` and `img resize --shrink` on images qemu-io wrote: qemu-img check finds no
/// error afterwards and qemu-img compare finds the same content as before (up to the new end), in the
/// active state and in every snapshot.
/// </summary>
public class Qcow2DowngradeShrinkTests
{
    private static Task<Tools.Result> Ours(params string[] args) => Tools.RunAsync("sharpblock", ["img", .. args]);

    private static Task<Tools.Result> Qemu(params string[] args) => Tools.RunAsync("qemu-img", args);

    private static Task<Tools.Result> Io(string image, params string[] commands)
    {
        var args = new List<string> { "-f", "qcow2" };
        foreach (var c in commands)
            args.AddRange(["-c", c]);
        args.Add(image);
        return Tools.RunAsync("qemu-io", args);
    }

    private static async Task<JsonElement> FormatSpecificAsync(string image)
    {
        var r = (await Qemu("info", "--output=json", image)).Ok();
        return JsonDocument.Parse(r.Stdout).RootElement.GetProperty("format-specific").GetProperty("data").Clone();
    }

    private static async Task<long> VirtualSizeAsync(string image)
    {
        var r = (await Qemu("info", "--output=json", image)).Ok();
        return JsonDocument.Parse(r.Stdout).RootElement.GetProperty("virtual-size").GetInt64();
    }

    /// <summary>Compares the image with its pre-change copy in the active state and after reverting each snapshot.</summary>
    private static async Task SameContentEverywhereAsync(string image, string before, params string[] snapshots)
    {
        (await Qemu("compare", before, image)).Ok();
        foreach (var s in snapshots)
        {
            (await Qemu("snapshot", "-a", s, image)).Ok();
            (await Qemu("snapshot", "-a", s, before)).Ok();
            (await Qemu("check", image)).Ok();
            (await Qemu("compare", before, image)).Ok();
        }
    }

    [Theory]
    [InlineData(false, "65536")]
    [InlineData(true, "65536")]
    [InlineData(true, "512")]
    public async Task Downgrade_expands_zero_clusters_and_keeps_every_state_readable(bool backing, string clusterSize)
    {
        using var dir = new TempDir();
        string b = dir.File("b.qcow2"), img = dir.File("t.qcow2"), before = dir.File("before.qcow2");
        var create = new List<string> { "create", "-q", "-f", "qcow2", "-o", $"cluster_size={clusterSize},lazy_refcounts=on" };
        if (backing)
        {
            (await Qemu("create", "-q", "-f", "qcow2", b, "4M")).Ok();
            (await Io(b, "write -P 0x11 0 3M")).Ok();
            create.AddRange(["-b", b, "-F", "qcow2", img]);
        }
        else
        {
            create.AddRange([img, "4M"]);
        }

        (await Qemu([.. create])).Ok();
        // Plain zero clusters (-u), preallocated ones (-z over data), data, and a snapshot sharing all of it.
        (await Io(img, "write -P 0x22 0 1M", "write -z 64k 128k", "write -z -u 512k 128k", "write -z -u 2M 256k")).Ok();
        (await Qemu("snapshot", "-c", "one", img)).Ok();
        (await Io(img, "write -z -u 0 64k", "write -P 0x33 1M 64k", "write -z 1M 64k", "write -P 0x44 3M 64k")).Ok();
        File.Copy(img, before);

        (await Ours("amend", "-o", "compat=0.10", img)).Ok();

        (await Qemu("check", img)).Ok();
        var spec = await FormatSpecificAsync(img);
        Assert.Equal("0.10", spec.GetProperty("compat").GetString());
        Assert.False(spec.TryGetProperty("lazy-refcounts", out _));
        // A version 2 header is 72 bytes and carries no feature name table.
        byte[] head = new byte[128];
        using (var fs = File.OpenRead(img))
            fs.ReadExactly(head);
        Assert.Equal(2, head[7]);
        Assert.DoesNotContain("dirty", System.Text.Encoding.ASCII.GetString(head), StringComparison.Ordinal);
        await SameContentEverywhereAsync(img, before, "one");
    }

    [Fact]
    public async Task Downgrade_is_refused_with_qemu_wording_when_refcounts_are_not_16_bits_or_lazy_refcounts_asked()
    {
        using var dir = new TempDir();
        string img = dir.File("r.qcow2");
        (await Qemu("create", "-q", "-f", "qcow2", "-o", "refcount_bits=8", img, "1M")).Ok();
        var r = await Ours("amend", "-o", "compat=0.10", img);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("compat=0.10 requires refcount_bits=16", r.Stderr, StringComparison.Ordinal);
        Assert.Equal("1.1", (await FormatSpecificAsync(img)).GetProperty("compat").GetString());

        string l = dir.File("l.qcow2");
        (await Qemu("create", "-q", "-f", "qcow2", l, "1M")).Ok();
        r = await Ours("amend", "-o", "compat=0.10,lazy_refcounts=on", l);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("Lazy refcounts only supported with compatibility level 1.1 and above", r.Stderr, StringComparison.Ordinal);
        (await Qemu("check", l)).Ok();
    }

    [Fact]
    public async Task Refcount_width_changes_keep_every_state_and_refusals_match_qemu_img()
    {
        using var dir = new TempDir();
        string img = dir.File("w.qcow2"), theirs = dir.File("q.qcow2"), before = dir.File("before.qcow2");
        (await Qemu("create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", img, "16M")).Ok();
        (await Io(img, "write -P 0x61 0 3M", "write -z 1M 512k")).Ok();
        (await Qemu("snapshot", "-c", "s", img)).Ok();
        (await Io(img, "write -P 0x62 2M 1M")).Ok();
        File.Copy(img, before);
        File.Copy(img, theirs);

        // Shared clusters have refcount 2: one bit cannot hold that, and odd widths are never valid.
        foreach (string bad in new[] { "refcount_bits=1", "refcount_bits=3", "refcount_bits=8,compat=0.10" })
        {
            var q = await Qemu("amend", "-o", bad, theirs);
            var o = await Ours("amend", "-o", bad, img);
            Assert.Equal(q.ExitCode, o.ExitCode);
            Assert.Equal(q.Stderr.Replace("qemu-img: ", "", StringComparison.Ordinal).Trim(), o.Stderr.Replace("sharpblock: ", "", StringComparison.Ordinal).Trim());
        }

        foreach (int bits in new[] { 2, 64, 8 })
        {
            (await Ours("amend", "-o", $"refcount_bits={bits}", img)).Ok();
            (await Qemu("check", img)).Ok();
            Assert.Equal(bits, (await FormatSpecificAsync(img)).GetProperty("refcount-bits").GetInt32());
            (await Qemu("compare", before, img)).Ok();
        }

        // Back to 16 bits and version 2 in one amend, as qemu-img allows.
        (await Ours("amend", "-o", "refcount_bits=16,compat=0.10", img)).Ok();
        var spec = await FormatSpecificAsync(img);
        Assert.Equal("0.10", spec.GetProperty("compat").GetString());
        Assert.Equal(16, spec.GetProperty("refcount-bits").GetInt32());
        (await Qemu("check", img)).Ok();
        await SameContentEverywhereAsync(img, before, "s");
    }

    [Theory]
    [InlineData("65536", false)]
    [InlineData("65536", true)]
    [InlineData("512", true)]
    public async Task Shrink_frees_the_tail_and_keeps_the_head_and_snapshots(string clusterSize, bool snapshot)
    {
        using var dir = new TempDir();
        string img = dir.File("s.qcow2"), before = dir.File("before.qcow2"), head = dir.File("head.raw");
        (await Qemu("create", "-q", "-f", "qcow2", "-o", $"cluster_size={clusterSize}", img, "6M")).Ok();
        (await Io(img, "write -P 0x51 0 6M")).Ok();
        if (snapshot)
            (await Qemu("snapshot", "-c", "full", img)).Ok();
        (await Io(img, "write -P 0x52 512k 3M", "write -z 4M 64k")).Ok();
        File.Copy(img, before);
        long fileBefore = new FileInfo(img).Length;
        const long newSize = (1 << 20) + 4096;

        (await Ours("resize", "--shrink", img, newSize.ToString(System.Globalization.CultureInfo.InvariantCulture))).Ok();

        (await Qemu("check", img)).Ok();
        Assert.Equal(newSize, await VirtualSizeAsync(img));
        (await Qemu("convert", "-O", "raw", before, head)).Ok();
        using (var fs = new FileStream(head, FileMode.Open))
            fs.SetLength(newSize);
        (await Qemu("compare", "-F", "raw", img, head)).Ok();
        // Without a snapshot holding them, the freed clusters and the refcount blocks that only counted
        // them go, and the file is cut after what is left.
        if (!snapshot)
            Assert.True(new FileInfo(img).Length < fileBefore / 2, $"the freed tail is cut from the file ({new FileInfo(img).Length} of {fileBefore} bytes)");
        // Growing back reads zeros past the old end, not what was there before the shrink.
        (await Ours("resize", img, "6M")).Ok();
        var read = (await Io(img, "read -P 0 2M 1M")).Ok();
        Assert.DoesNotContain("Pattern verification failed", read.Stdout, StringComparison.Ordinal);
        (await Qemu("check", img)).Ok();
        if (snapshot)
        {
            (await Qemu("snapshot", "-a", "full", img)).Ok();
            (await Qemu("snapshot", "-a", "full", before)).Ok();
            (await Qemu("check", img)).Ok();
            (await Qemu("compare", before, img)).Ok();
        }

    }

    [Fact]
    public async Task Shrink_without_the_flag_is_refused_like_qemu_img_and_raw_shrinks_too()
    {
        using var dir = new TempDir();
        string q = dir.File("a.qcow2"), raw = dir.PatternFile("a.raw", 2 << 20);
        (await Qemu("create", "-q", "-f", "qcow2", q, "2M")).Ok();
        var ours = await Ours("resize", q, "1M");
        var theirs = await Qemu("resize", q, "1M");
        Assert.Equal(theirs.ExitCode, ours.ExitCode);
        Assert.Equal(theirs.Stderr.Replace("qemu-img: ", "", StringComparison.Ordinal), ours.Stderr.Replace("sharpblock: ", "", StringComparison.Ordinal));
        Assert.Equal(2 << 20, await VirtualSizeAsync(q));
        ours = await Ours("resize", "--shrink", q, "100000");
        theirs = await Qemu("resize", "--shrink", q, "100000");
        Assert.Equal(theirs.ExitCode, ours.ExitCode);
        Assert.Equal(theirs.Stderr.Replace("qemu-img: ", "", StringComparison.Ordinal), ours.Stderr.Replace("sharpblock: ", "", StringComparison.Ordinal));

        byte[] original = File.ReadAllBytes(raw);
        (await Ours("resize", "-f", "raw", "--shrink", raw, "1M")).Ok();
        Assert.Equal(original.AsSpan(0, 1 << 20).ToArray(), File.ReadAllBytes(raw));
    }
}
