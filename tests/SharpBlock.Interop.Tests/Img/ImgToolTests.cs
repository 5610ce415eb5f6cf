using System.Text.Json;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Img;

/// <summary>
/// `sharpblock img` compare, resize, commit, rebase and dd against real qemu-img: the same verdicts and exit
/// codes on the same files, and images that qemu-img check and compare accept afterwards.
/// </summary>
public class ImgToolTests
{
    private static Task<Tools.Result> Ours(params string[] args) => Tools.RunAsync("sharpblock", ["img", .. args]);

    private static Task<Tools.Result> Qemu(params string[] args) => Tools.RunAsync("qemu-img", args);

    private static async Task<long> VirtualSizeAsync(string image)
    {
        var r = (await Qemu("info", "--output=json", image)).Ok();
        return JsonDocument.Parse(r.Stdout).RootElement.GetProperty("virtual-size").GetInt64();
    }

    private static async Task<string?> BackingAsync(string image)
    {
        var r = (await Qemu("info", "--output=json", image)).Ok();
        return JsonDocument.Parse(r.Stdout).RootElement.TryGetProperty("backing-filename", out var b) ? b.GetString() : null;
    }

    [Fact]
    public async Task Compare_gives_the_same_verdicts_and_exit_codes_as_qemu_img()
    {
        using var dir = new TempDir();
        string a = dir.File("a.raw"), b = dir.File("b.qcow2"), big = dir.File("big.raw"), dirty = dir.File("dirty.raw");
        (await Qemu("create", "-q", "-f", "raw", a, "1M")).Ok();
        (await Qemu("create", "-q", "-f", "qcow2", b, "1M")).Ok();
        (await Qemu("create", "-q", "-f", "raw", big, "2M")).Ok();
        (await Qemu("create", "-q", "-f", "raw", dirty, "2M")).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 7 1536k 512", dirty)).Ok();
        string[][] cases =
        [
            [a, b],
            [a, big],
            ["-s", a, big],
            [a, dirty],
            [a, dir.File("missing.raw")],
        ];
        foreach (var c in cases)
        {
            var q = await Qemu(["compare", .. c]);
            var o = await Ours(["compare", .. c]);
            Assert.Equal(q.ExitCode, o.ExitCode);
            Assert.Equal(q.Stdout, o.Stdout);
        }

        (await Tools.RunAsync("qemu-io", "-f", "qcow2", "-c", "write -P 9 70000 3", b)).Ok();
        var diff = await Ours("compare", a, b);
        Assert.Equal(1, diff.ExitCode);
        Assert.Equal("Content mismatch at offset 70000!\n", diff.Stdout);
    }

    [Fact]
    public async Task Compare_warns_of_a_size_mismatch_only_when_qemu_img_does()
    {
        // qemu-img 7.2 compares the common part first: a content mismatch there is reported alone, and the
        // size warning comes only when the common part matched (then the longer tail decides).
        using var dir = new TempDir();
        string small = dir.File("small.raw"), other = dir.File("other.raw"), big = dir.File("big.raw"), tail = dir.File("tail.raw");
        (await Qemu("create", "-q", "-f", "raw", small, "1M")).Ok();
        (await Qemu("create", "-q", "-f", "raw", other, "1M")).Ok();
        (await Qemu("create", "-q", "-f", "raw", big, "2M")).Ok();
        (await Qemu("create", "-q", "-f", "raw", tail, "2M")).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 3 4096 512", other)).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 3 4096 512", big)).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 5 1536k 512", tail)).Ok();
        string[][] cases =
        [
            ["-f", "raw", "-F", "raw", small, big],
            ["-f", "raw", "-F", "raw", big, small],
            ["-f", "raw", "-F", "raw", other, tail],
            ["-f", "raw", "-F", "raw", small, tail],
            ["-f", "raw", "-F", "raw", other, big],
        ];
        foreach (var c in cases)
        {
            var q = await Qemu(["compare", .. c]);
            var o = await Ours(["compare", .. c]);
            Assert.Equal((q.ExitCode, q.Stdout), (o.ExitCode, o.Stdout));
        }

        Assert.Equal("Content mismatch at offset 4096!\n", (await Ours("compare", "-f", "raw", "-F", "raw", small, big)).Stdout);
    }

    [Fact]
    public async Task Resize_grows_raw_and_qcow2_and_shrinks_only_when_asked()
    {
        using var dir = new TempDir();
        string raw = dir.PatternFile("a.raw", 1 << 20), q = dir.File("b.qcow2");
        (await Qemu("create", "-q", "-f", "qcow2", q, "1M")).Ok();
        Assert.Equal("Image resized.\n", (await Ours("resize", raw, "+1M")).Ok().Stdout);
        Assert.Equal(2 << 20, await VirtualSizeAsync(raw));
        (await Ours("resize", q, "64M")).Ok();
        Assert.Equal(64 << 20, await VirtualSizeAsync(q));
        (await Qemu("check", q)).Ok();

        var refused = await Ours("resize", raw, "1M");
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("Use the --shrink option to perform a shrink operation.", refused.Stderr, StringComparison.Ordinal);
        (await Ours("resize", "--shrink", raw, "-1536K")).Ok();
        Assert.Equal(512 << 10, await VirtualSizeAsync(raw));
        var qcow2Shrink = await Ours("resize", q, "1M");
        Assert.Equal(1, qcow2Shrink.ExitCode);
        Assert.Contains("Use the --shrink option", qcow2Shrink.Stderr, StringComparison.Ordinal);
        Assert.Equal(64 << 20, await VirtualSizeAsync(q));
        (await Ours("resize", "--shrink", q, "1M")).Ok();
        Assert.Equal(1 << 20, await VirtualSizeAsync(q));
        (await Qemu("check", q)).Ok();
        Assert.Equal(1, (await Ours("resize", raw, "lots")).ExitCode);
        // qcow2 sizes are whole sectors, growing too, as qemu-img says; raw takes any size.
        var odd = await Ours("resize", q, "3000001");
        Assert.Equal(1, odd.ExitCode);
        Assert.Equal("sharpblock: The new size must be a multiple of 512", odd.Stderr.Trim());
        Assert.Equal(1, (await Qemu("resize", q, "3000001")).ExitCode);
        (await Ours("resize", raw, "3000001")).Ok();
        Assert.Equal(3000001, new FileInfo(raw).Length);
    }

    [Fact]
    public async Task A_raw_file_of_partial_sectors_is_a_disk_of_whole_sectors_as_qemu_counts_it()
    {
        using var dir = new TempDir();
        string raw = dir.File("odd.raw");
        var data = new byte[3000001];
        new Random(5).NextBytes(data);
        await File.WriteAllBytesAsync(raw, data);
        Assert.Equal(3000320, await VirtualSizeAsync(raw));
        var ours = (await Ours("info", "--output=json", raw)).Ok().Stdout;
        Assert.Equal(3000320, JsonDocument.Parse(ours).RootElement.GetProperty("virtual-size").GetInt64());
        Assert.Equal((await Qemu("map", "--output=json", raw)).Ok().Stdout, (await Ours("map", "--output=json", raw)).Ok().Stdout);

        // A copy is whole sectors too, the tail zeros, as qemu-img's copy is.
        string theirs = dir.File("theirs.raw"), mine = dir.File("mine.raw");
        (await Qemu("convert", "-O", "raw", raw, theirs)).Ok();
        (await Ours("convert", "-O", "raw", raw, mine)).Ok();
        Assert.Equal(File.ReadAllBytes(theirs), File.ReadAllBytes(mine));
    }

    private static async Task<(string Base, string Top, string Reference)> ChainAsync(TempDir dir)
    {
        string b = dir.File("base.qcow2"), t = dir.File("top.qcow2"), r = dir.File("ref.raw");
        (await Qemu("create", "-q", "-f", "qcow2", b, "2M")).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "qcow2", "-c", "write -P 1 0 1M", b)).Ok();
        (await Qemu("create", "-q", "-f", "qcow2", "-b", b, "-F", "qcow2", t)).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "qcow2", "-c", "write -P 2 512k 64k", "-c", "write -z 128k 64k", "-c", "write -P 3 1536k 4k", t)).Ok();
        (await Qemu("convert", "-f", "qcow2", "-O", "raw", t, r)).Ok();
        return (b, t, r);
    }

    [Fact]
    public async Task Commit_writes_the_top_into_its_base_and_empties_it()
    {
        using var dir = new TempDir();
        var (b, t, reference) = await ChainAsync(dir);
        Assert.Equal("Image committed.\n", (await Ours("commit", t)).Ok().Stdout);
        (await Qemu("check", b)).Ok();
        (await Qemu("check", t)).Ok();
        (await Qemu("compare", "-F", "raw", b, reference)).Ok();
        (await Qemu("compare", "-F", "raw", t, reference)).Ok();
        // Emptied: every range of the top now reads from the base.
        var map = JsonDocument.Parse((await Qemu("map", "--output=json", t)).Ok().Stdout).RootElement;
        Assert.All(map.EnumerateArray(), e => Assert.True(e.GetProperty("depth").GetInt32() > 0 || !e.GetProperty("data").GetBoolean()));
        var again = await Ours("commit", b);
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("Image does not have a backing file", again.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Commit_through_a_shorter_middle_image_writes_its_zeros_into_the_base()
    {
        // base 4M of data, mid 2M over it, top 4M over mid: the guest reads zeros past mid's end, and a commit
        // into the base must keep them zeros (QEMU counts them as decided by mid, the layer above the base).
        using var dir = new TempDir();
        string b = dir.File("base.qcow2"), mid = dir.File("mid.qcow2"), t = dir.File("top.qcow2"), reference = dir.File("ref.raw");
        (await Qemu("create", "-q", "-f", "qcow2", b, "4M")).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "qcow2", "-c", "write -P 9 0 4M", b)).Ok();
        (await Qemu("create", "-q", "-f", "qcow2", "-b", b, "-F", "qcow2", mid, "2M")).Ok();
        (await Qemu("create", "-q", "-f", "qcow2", "-b", mid, "-F", "qcow2", t, "4M")).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "qcow2", "-c", "write -P 3 1M 64k", t)).Ok();
        (await Qemu("convert", "-f", "qcow2", "-O", "raw", t, reference)).Ok();
        (await Ours("commit", "-q", "-b", b, t)).Ok();
        (await Qemu("check", b)).Ok();
        (await Qemu("compare", "-F", "raw", b, reference)).Ok();
        (await Qemu("compare", "-F", "raw", t, reference)).Ok();
    }

    [Fact]
    public async Task Commit_with_d_keeps_the_top()
    {
        using var dir = new TempDir();
        var (b, t, reference) = await ChainAsync(dir);
        (await Ours("commit", "-d", t)).Ok();
        (await Qemu("compare", "-F", "raw", b, reference)).Ok();
        var map = JsonDocument.Parse((await Qemu("map", "--output=json", t)).Ok().Stdout).RootElement;
        Assert.Contains(map.EnumerateArray(), e => e.GetProperty("depth").GetInt32() == 0 && e.GetProperty("data").GetBoolean());
    }

    [Fact]
    public async Task Safe_rebase_keeps_what_the_guest_sees_and_unsafe_only_renames()
    {
        using var dir = new TempDir();
        var (_, t, reference) = await ChainAsync(dir);
        string other = dir.File("other.qcow2");
        (await Qemu("create", "-q", "-f", "qcow2", other, "2M")).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "qcow2", "-c", "write -P 5 256k 256k", other)).Ok();
        (await Ours("rebase", "-b", other, "-F", "qcow2", t)).Ok();
        Assert.Equal(other, await BackingAsync(t));
        (await Qemu("check", t)).Ok();
        (await Qemu("compare", "-F", "raw", t, reference)).Ok();

        (await Ours("rebase", "-b", "", t)).Ok();
        Assert.Null(await BackingAsync(t));
        (await Qemu("compare", "-F", "raw", t, reference)).Ok();

        (await Ours("rebase", "-u", "-b", "renamed.qcow2", "-F", "qcow2", t)).Ok();
        Assert.Equal("renamed.qcow2", await BackingAsync(t));
    }

    [Theory]
    [InlineData("bs=4k", "count=3", "skip=0")]
    [InlineData("bs=4k", "count=2", "skip=1")]
    [InlineData("bs=512", "skip=3", "count=100000")]
    [InlineData("bs=1k", "count=10", "skip=4")]
    public async Task Dd_copies_what_qemu_img_dd_copies(string bs, string count, string skip)
    {
        using var dir = new TempDir();
        string input = dir.PatternFile("in.raw", 1 << 20);
        string theirs = dir.File("theirs.raw"), ours = dir.File("ours.raw");
        (await Qemu("dd", "-f", "raw", "-O", "raw", $"if={input}", $"of={theirs}", bs, count, skip)).Ok();
        (await Ours("dd", "-f", "raw", "-O", "raw", $"if={input}", $"of={ours}", bs, count, skip)).Ok();
        Assert.Equal(File.ReadAllBytes(theirs), File.ReadAllBytes(ours));
    }

    [Fact]
    public async Task A_backing_chain_that_loops_is_refused_not_followed_forever()
    {
        using var dir = new TempDir();
        string a = dir.File("a.qcow2"), b = dir.File("b.qcow2");
        (await Qemu("create", "-q", "-f", "qcow2", a, "1M")).Ok();
        (await Qemu("create", "-q", "-f", "qcow2", "-b", a, "-F", "qcow2", b)).Ok();
        (await Qemu("rebase", "-u", "-b", b, "-F", "qcow2", a)).Ok();
        // Plain info describes the top alone, as qemu-img's (which does not open backing files for it).
        var plain = await Ours("info", b);
        Assert.Equal((await Qemu("info", b)).Ok().Stdout, plain.Ok().Stdout);
        // Following the chain stops at the link that closes the loop, in qemu-img's words.
        var r = await Ours("info", "--backing-chain", b);
        var q = await Qemu("info", "--backing-chain", b);
        Assert.Equal(1, r.ExitCode);
        Assert.Equal(q.ExitCode, r.ExitCode);
        Assert.Equal($"Backing file '{b}' creates an infinite loop.", r.OneLineError());
        Assert.Equal(q.Stderr, "qemu-img: " + r.OneLineError() + "\n");
    }

    [Fact]
    public async Task A_missing_backing_file_is_reported_as_qemu_img_reports_it()
    {
        using var dir = new TempDir();
        string top = dir.File("top.qcow2"), gone = dir.File("gone.raw");
        (await Qemu("create", "-q", "-u", "-f", "qcow2", "-b", gone, "-F", "raw", top, "1M")).Ok();
        // info describes the image alone, as qemu-img's, even with its backing file gone.
        Assert.Equal((await Qemu("info", top)).Ok().Stdout, (await Ours("info", top)).Ok().Stdout);
        // Commands that read through the chain name the overlay, then the backing file's failure.
        foreach (string[] args in (string[][])[["convert", "-O", "raw", top, dir.File("out.raw")], ["check", top], ["info", "--backing-chain", top]])
        {
            var q = await Qemu(args);
            var r = await Ours(args);
            Assert.Equal(q.ExitCode, r.ExitCode);
            Assert.Equal(q.Stderr, "qemu-img: " + r.OneLineError() + "\n");
        }

        // create checks that the backing chain opens unless -u says otherwise, and then writes nothing.
        string next = dir.File("next.qcow2");
        var c = await Ours("create", "-f", "qcow2", "-b", top, "-F", "qcow2", next, "1M");
        Assert.Equal($"{next}: Could not open backing file: Could not open '{gone}': No such file or directory\nCould not open backing image.", c.OneLineError(lines: 2));
        Assert.Equal((await Qemu("create", "-f", "qcow2", "-b", top, "-F", "qcow2", next, "1M")).Stderr, c.Stderr.Replace("sharpblock: ", "qemu-img: ", StringComparison.Ordinal));
        Assert.False(File.Exists(next));
        (await Ours("create", "-q", "-u", "-f", "qcow2", "-b", top, "-F", "qcow2", next, "1M")).Ok();
        Assert.True(File.Exists(next));
    }

    [Fact]
    public async Task Targets_that_cannot_be_written_give_one_line_and_exit_1()
    {
        using var dir = new TempDir();
        string src = dir.File("src.qcow2");
        (await Qemu("create", "-q", "-f", "qcow2", src, "1M")).Ok();
        // A device that cannot hold the image, as qemu-img refuses it.
        var r = await Ours("convert", "-O", "raw", src, "/dev/null");
        Assert.Equal("Cannot grow device files", r.OneLineError());
        Assert.Equal(1, (await Qemu("convert", "-O", "raw", src, "/dev/null")).ExitCode);
        // A directory that does not exist: the OS's reason, not a stack trace.
        r = await Ours("convert", "-O", "qcow2", src, dir.File("no/such/dir/out.qcow2"));
        Assert.Contains("No such file or directory", r.OneLineError(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Snapshot_commands_on_a_raw_image_answer_as_qemu_img_does()
    {
        using var dir = new TempDir();
        string raw = dir.PatternFile("disk.img", 1 << 20);
        foreach (var op in new[] { new[] { "-l" }, ["-c", "s1"], ["-a", "s1"], ["-d", "s1"] })
        {
            var q = await Qemu(["snapshot", .. op, raw]);
            var o = await Ours(["snapshot", .. op, raw]);
            Assert.Equal((q.ExitCode, q.Stdout), (o.ExitCode, o.Stdout));
            Assert.Equal(q.Stderr.Trim().Split('\n')[^1].Replace("qemu-img: ", "", StringComparison.Ordinal),
                o.Stderr.Trim().Split('\n')[^1].Replace("sharpblock: ", "", StringComparison.Ordinal));
        }

        // A qcow2 without the snapshot asked for: qemu-img's words for each command.
        string q2 = dir.File("s.qcow2");
        (await Qemu("create", "-q", "-f", "qcow2", q2, "1M")).Ok();
        foreach (var op in new[] { new[] { "-a", "nosuch" }, ["-d", "nosuch"] })
        {
            var q = await Qemu(["snapshot", .. op, q2]);
            var o = await Ours(["snapshot", .. op, q2]);
            Assert.Equal(q.ExitCode, o.ExitCode);
            Assert.Equal(q.Stderr.Replace("qemu-img: ", "", StringComparison.Ordinal), o.Stderr.Replace("sharpblock: ", "", StringComparison.Ordinal));
        }

        // Opening a guessed raw image for writing warns in qemu-img's words.
        var warn = await Ours("snapshot", "-c", "s1", raw);
        Assert.Equal(string.Join('\n', (await Qemu("snapshot", "-c", "s1", raw)).Stderr.Split('\n')[..3]), string.Join('\n', warn.Stderr.Split('\n')[..3]));
        Assert.StartsWith("WARNING: Image format was not specified", warn.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("WARNING", (await Ours("snapshot", "-f", "raw", "-c", "s1", raw)).Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Progress_on_a_pipe_and_on_a_terminal_is_byte_for_byte_qemu_imgs()
    {
        using var dir = new TempDir();
        string src = dir.PatternFile("src.raw", 8 << 20), other = dir.PatternFile("other.raw", 8 << 20, seed: 3);
        string[][] commands =
        [
            // One worker: with several, which chunk finishes first (and so which figures show) is a race.
            ["convert", "-p", "-m", "1", "-O", "qcow2", src, "OUT.qcow2"],
            ["compare", "-p", src, src],
            ["compare", "-p", src, other],
        ];
        int n = 0;
        foreach (var c in commands)
        {
            string Args(string who) => string.Join(' ', c.Select(a => a == "OUT.qcow2" ? dir.File($"{who}{n}.qcow2") : a));
            var q = await Tools.RunAsync("qemu-img", Args("q").Split(' '));
            var o = await Ours(Args("o").Split(' '));
            Assert.Equal(q.Stdout, o.Stdout);
            n++;
        }

        // rebase onto a new backing file copies what differs, with progress.
        foreach (string who in new[] { "q", "o" })
            (await Qemu("create", "-q", "-f", "qcow2", "-b", other, "-F", "raw", dir.File($"top-{who}.qcow2"))).Ok();
        var qr = (await Qemu("rebase", "-p", "-b", src, "-F", "raw", dir.File("top-q.qcow2"))).Ok();
        var or = (await Ours("rebase", "-p", "-b", src, "-F", "raw", dir.File("top-o.qcow2"))).Ok();
        Assert.Equal(qr.Stdout, or.Stdout);

        // On a terminal: the same bytes, and the terminal left in the mode it was in (no keypad-mode escape).
        var tq = (await Tools.RunAsync("script", "-qc", $"qemu-img convert -p -m 1 -O qcow2 {src} {dir.File("tq.qcow2")}", "/dev/null")).Ok();
        var to = (await Tools.RunAsync("script", "-qc", $"dotnet {Tools.SharpBlockDll} img convert -p -m 1 -O qcow2 {src} {dir.File("to.qcow2")}", "/dev/null")).Ok();
        Assert.DoesNotContain("\u001b", to.Stdout, StringComparison.Ordinal);
        Assert.Equal(tq.Stdout, to.Stdout);
    }

    [Fact]
    public async Task Output_redirected_to_a_file_shares_it_with_what_the_shell_writes_next()
    {
        using var dir = new TempDir();
        string img = dir.PatternFile("d.raw", 1 << 20), log = dir.File("log.txt");
        (await Tools.RunAsync("bash", "-c", $"{{ echo HEAD; dotnet '{Tools.SharpBlockDll}' img info -f raw '{img}'; echo TAIL; }} > '{log}'")).Ok();
        string[] lines = (await File.ReadAllTextAsync(log)).TrimEnd('\n').Split('\n');
        Assert.Equal("HEAD", lines[0]);
        Assert.Equal("image: " + img, lines[1]);
        Assert.Equal("TAIL", lines[^1]);
    }

    [Fact]
    public async Task Measure_prints_what_qemu_img_measure_prints()
    {
        using var dir = new TempDir();
        var (_, t, _) = await ChainAsync(dir);
        string raw = dir.PatternFile("data.raw", 3 << 20);
        string[][] cases =
        [
            ["-O", "qcow2", "--size", "1G"],
            ["-O", "qcow2", "--size", "100M", "-o", "cluster_size=4k"],
            ["-O", "qcow2", "--size", "7G", "-o", "refcount_bits=64"],
            ["--output=json", "-O", "qcow2", "--size", "3G"],
            ["-O", "raw", "--size", "1G"],
            ["-O", "qcow2", t],
            ["--output=json", "-O", "qcow2", t],
            ["-O", "qcow2", raw],
            ["-O", "raw", t],
            ["-O", "qcow2", "--size", "1G", "-o", "preallocation=falloc"],
            ["-O", "qcow2", "--size", "1G", "-o", "preallocation=full"],
            ["-O", "qcow2", "--size", "1G", "-o", "preallocation=metadata"],
            ["-O", "qcow2", "-o", "preallocation=full", raw],
            ["-O", "raw", "-o", "preallocation=full", raw],
        ];
        foreach (var c in cases)
        {
            var q = (await Qemu(["measure", .. c])).Ok();
            var o = (await Ours(["measure", .. c])).Ok();
            Assert.Equal(q.Stdout, o.Stdout);
        }
    }

    [Fact]
    public async Task Amend_upgrades_compat_and_toggles_lazy_refcounts_as_qemu_img_reads_them()
    {
        using var dir = new TempDir();
        string img = dir.File("old.qcow2");
        (await Qemu("create", "-q", "-f", "qcow2", "-o", "compat=0.10", img, "4M")).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "qcow2", "-c", "write -P 0x44 0 1M", img)).Ok();
        Assert.Equal(1, (await Ours("amend", "-o", "lazy_refcounts=on", img)).ExitCode);
        (await Ours("amend", "-o", "compat=1.1,lazy_refcounts=on", img)).Ok();
        var spec = JsonDocument.Parse((await Qemu("info", "--output=json", img)).Ok().Stdout).RootElement.GetProperty("format-specific").GetProperty("data");
        Assert.Equal("1.1", spec.GetProperty("compat").GetString());
        Assert.True(spec.GetProperty("lazy-refcounts").GetBoolean());
        (await Qemu("check", img)).Ok();
        var read = (await Tools.RunAsync("qemu-io", "-f", "qcow2", "-c", "read -P 0x44 0 1M", img)).Ok();
        Assert.DoesNotContain("Pattern verification failed", read.Stdout, StringComparison.Ordinal);
        (await Ours("amend", "-o", "lazy_refcounts=off", img)).Ok();
        spec = JsonDocument.Parse((await Qemu("info", "--output=json", img)).Ok().Stdout).RootElement.GetProperty("format-specific").GetProperty("data");
        Assert.False(spec.GetProperty("lazy-refcounts").GetBoolean());
        (await Ours("amend", "-o", "compat=0.10", img)).Ok();
        spec = JsonDocument.Parse((await Qemu("info", "--output=json", img)).Ok().Stdout).RootElement.GetProperty("format-specific").GetProperty("data");
        Assert.Equal("0.10", spec.GetProperty("compat").GetString());
        (await Qemu("check", img)).Ok();
    }

    [Fact]
    public async Task Convert_with_a_backing_file_copies_only_the_top_and_S0_writes_everything()
    {
        using var dir = new TempDir();
        var (b, t, reference) = await ChainAsync(dir);
        string outImg = dir.File("out.qcow2");
        (await Ours("convert", "-f", "qcow2", "-O", "qcow2", "-B", b, "-F", "qcow2", "-W", "-m", "8", "-t", "none", t, outImg)).Ok();
        Assert.Equal(b, await BackingAsync(outImg));
        (await Qemu("check", outImg)).Ok();
        (await Qemu("compare", "-F", "raw", outImg, reference)).Ok();
        var map = JsonDocument.Parse((await Qemu("map", "--output=json", outImg)).Ok().Stdout).RootElement;
        long own = map.EnumerateArray().Where(e => e.GetProperty("depth").GetInt32() == 0 && e.GetProperty("data").GetBoolean()).Sum(e => e.GetProperty("length").GetInt64());
        Assert.True(own <= 256 << 10, $"only the top's clusters are copied, got {own} bytes");

        string full = dir.File("full.raw");
        (await Ours("convert", "-S", "0", "-O", "raw", t, full)).Ok();
        (await Qemu("compare", "-f", "raw", full, reference)).Ok();
        var zeroMap = JsonDocument.Parse((await Qemu("map", "--output=json", "-f", "raw", full)).Ok().Stdout).RootElement;
        Assert.All(zeroMap.EnumerateArray(), e => Assert.True(e.GetProperty("data").GetBoolean()));
        Assert.Equal(1, (await Ours("convert", "-m", "99", t, dir.File("x.raw"))).ExitCode);
    }
}
