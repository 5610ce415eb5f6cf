using System.Text.Json;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Img;

/// <summary>
/// Command lines that qemu-img 7.2 refuses, or treats specially, run through both tools side by side: the same
/// exit code, the same reason on stderr, and no file created or touched where qemu-img leaves it alone.
/// </summary>
public class ImgOptionTests
{
    private static Task<Tools.Result> Ours(params string[] args) => Tools.RunAsync("sharpblock", ["img", .. args]);

    private static Task<Tools.Result> Qemu(params string[] args) => Tools.RunAsync("qemu-img", args);

    private static async Task<string> SourceAsync(TempDir dir, string size = "4M")
    {
        string src = dir.File("src.qcow2");
        (await Qemu("create", "-q", "-f", "qcow2", src, size)).Ok();
        (await Tools.RunAsync("qemu-io", "-c", "write -P 0x11 0 1M", "-c", "write -P 0x22 2M 512k", src)).Ok();
        return src;
    }

    /// <summary>Both tools fail with exit code 1 and a stderr line holding <paramref name="reason"/>.</summary>
    private static async Task BothRefuseAsync(string reason, params string[] args)
    {
        var q = await Qemu(args);
        var o = await Ours(args);
        Assert.True(q.ExitCode == 1, $"qemu-img {string.Join(' ', args)}: exit {q.ExitCode}, {q.Stderr}");
        Assert.Contains(reason, q.Stderr, StringComparison.Ordinal);
        Assert.True(o.ExitCode == 1, $"sharpblock img {string.Join(' ', args)}: exit {o.ExitCode}, {o.Stderr}");
        Assert.Contains(reason, o.Stderr, StringComparison.Ordinal);
        // As many lines as qemu-img's reason has, and never a stack trace.
        o.OneLineError(lines: o.Stderr.TrimEnd('\n').Split('\n').Length == 1 ? 1 : q.Stderr.TrimEnd('\n').Split('\n').Length);
    }

    [Theory]
    [InlineData("info", "-Z", "x")]
    [InlineData("info", "--bogus", "x")]
    [InlineData("info", "-f")]
    [InlineData("info", "--output")]
    [InlineData("info")]
    [InlineData("create")]
    [InlineData("create", "-f", "qcow2", "x", "1Q")]
    [InlineData("resize", "x")]
    [InlineData("convert", "x")]
    [InlineData("compare", "x")]
    [InlineData("commit")]
    [InlineData("snapshot")]
    [InlineData("bogus")]
    public async Task A_malformed_command_line_is_answered_in_qemu_imgs_words_with_its_help_line_where_it_prints_one(params string[] args)
    {
        var q = await Qemu(args);
        var o = await Ours(args);
        Assert.Equal(1, q.ExitCode);
        Assert.Equal(1, o.ExitCode);
        Assert.Equal(
            q.Stderr.Replace("qemu-img: ", "", StringComparison.Ordinal),
            o.Stderr.Replace("sharpblock: ", "", StringComparison.Ordinal).Replace("'sharpblock img --help'", "'qemu-img --help'", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Version_is_printed_as_qemus_tools_print_theirs()
    {
        var q = (await Qemu("--version")).Ok().Stdout.Split('\n');
        foreach (var (args, tool) in new[] { (new[] { "-V" }, "sharpblock"), (["--version"], "sharpblock"), (["img", "-V"], "sharpblock img"), (["daemon", "--version"], "sharpblock daemon") })
        {
            var o = (await Tools.RunAsync("sharpblock", args)).Ok().Stdout.Split('\n');
            // "TOOL version X" and a copyright line, as qemu-img's first two lines.
            Assert.Matches(@"^qemu-img version \d+\.\d+", q[0]);
            Assert.Matches("^" + tool + @" version \d+\.\d+\.\d+$", o[0]);
            Assert.StartsWith("Copyright (c) ", q[1], StringComparison.Ordinal);
            Assert.StartsWith("Copyright (c) ", o[1], StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("7", "Valid sizes are multiples of 512 up to 16777216")]
    [InlineData("1G", "Valid sizes are multiples of 512 up to 16777216")]
    [InlineData("abc", "Invalid buffer size for sparse output specified")]
    public async Task Convert_refuses_an_S_that_is_not_a_multiple_of_512_up_to_16M(string sparse, string reason)
    {
        using var dir = new TempDir();
        string src = await SourceAsync(dir);
        string dst = dir.File("out.raw");
        await BothRefuseAsync(reason, "convert", "-S", sparse, "-O", "raw", src, dst);
        Assert.False(File.Exists(dst));
    }

    [Fact]
    public async Task Convert_n_into_a_smaller_target_is_refused_before_anything_is_written()
    {
        using var dir = new TempDir();
        string src = await SourceAsync(dir);
        string small = dir.File("small.raw");
        var before = new byte[1 << 20];
        Array.Fill(before, (byte)0x55);
        await File.WriteAllBytesAsync(small, before);
        await BothRefuseAsync("output file is smaller than input file", "convert", "-n", "-O", "raw", src, small);
        Assert.Equal(before, await File.ReadAllBytesAsync(small));
    }

    [Fact]
    public async Task Convert_B_needs_an_explicit_backing_format_and_a_target_format_with_backing_files()
    {
        using var dir = new TempDir();
        string src = await SourceAsync(dir);
        string dst = dir.File("out.qcow2");
        await BothRefuseAsync("Use of backing file requires explicit backing format", "convert", "-B", src, "-O", "qcow2", src, dst);
        Assert.False(File.Exists(dst));
        await BothRefuseAsync("Backing file not supported for file format 'raw'", "convert", "-B", src, "-F", "qcow2", "-O", "raw", src, dst);
        Assert.False(File.Exists(dst));

        // backing_fmt in -o is as explicit as -F.
        (await Ours("convert", "-B", src, "-o", "backing_fmt=qcow2", "-O", "qcow2", src, dst)).Ok();
        (await Qemu("compare", src, dst)).Ok();
    }

    [Theory]
    [InlineData("convert", "-h")]
    [InlineData("info", "--help")]
    [InlineData("check", "-h")]
    public async Task A_subcommand_given_h_prints_the_usage_and_succeeds_without_acting(string command, string help)
    {
        using var dir = new TempDir();
        string src = await SourceAsync(dir);
        string dst = dir.File("out.raw");
        string[] args = command == "convert" ? [command, help, src, dst] : [command, help, src];
        var q = await Qemu(args);
        var o = await Ours(args);
        Assert.Equal(0, q.ExitCode);
        Assert.Equal(0, o.ExitCode);
        Assert.Contains("convert", o.Stdout, StringComparison.Ordinal);
        Assert.False(File.Exists(dst));
    }

    [Fact]
    public async Task Resize_preallocation_refuses_what_qemu_img_refuses()
    {
        using var dir = new TempDir();
        string raw = dir.File("r.raw");
        (await Qemu("create", "-q", "-f", "raw", raw, "4M")).Ok();
        await BothRefuseAsync("Invalid preallocation mode 'bogus'", "resize", "-f", "raw", "--preallocation=bogus", raw, "8M");
        await BothRefuseAsync("Preallocation can only be used for growing images", "resize", "-f", "raw", "--shrink", "--preallocation=full", raw, "1M");
        await BothRefuseAsync("Unsupported preallocation mode: metadata", "resize", "-f", "raw", "--preallocation=metadata", raw, "8M");
        Assert.Equal(4L << 20, new FileInfo(raw).Length);
    }

    [Theory]
    [InlineData("raw", "falloc")]
    [InlineData("raw", "full")]
    [InlineData("qcow2", "full")]
    [InlineData("qcow2", "metadata")]
    public async Task Resize_preallocation_allocates_the_grown_part(string fmt, string mode)
    {
        using var dir = new TempDir();
        string img = dir.File("r." + fmt);
        (await Qemu("create", "-q", "-f", fmt, img, "4M")).Ok();
        (await Tools.RunAsync("qemu-io", "-f", fmt, "-c", "write -P 0x11 1M 64k", img)).Ok();
        string reference = dir.File("ref." + fmt);
        File.Copy(img, reference);
        (await Qemu("resize", "-q", "-f", fmt, reference, "12M")).Ok();

        (await Ours("resize", "-q", "-f", fmt, "--preallocation=" + mode, img, "12M")).Ok();

        (await Qemu("compare", "-f", fmt, "-F", fmt, img, reference)).Ok();
        if (fmt == "qcow2")
            (await Qemu("check", img)).Ok();
        var map = JsonDocument.Parse((await Qemu("map", "--output=json", "-f", fmt, img)).Ok().Stdout).RootElement;
        foreach (var e in map.EnumerateArray())
        {
            long start = e.GetProperty("start").GetInt64();
            long end = start + e.GetProperty("length").GetInt64();
            if (end > 4 << 20)
                Assert.True(e.GetProperty("data").GetBoolean(), $"{start}..{end} of the grown part is allocated");
        }

        var info = JsonDocument.Parse((await Qemu("info", "--output=json", "-f", fmt, img)).Ok().Stdout).RootElement;
        Assert.True(info.GetProperty("actual-size").GetInt64() >= 8L << 20, "the grown 8 MiB own host space");
    }

    [Fact]
    public async Task A_bad_cache_mode_is_refused_by_every_command_that_takes_one()
    {
        using var dir = new TempDir();
        string src = await SourceAsync(dir);
        string top = dir.File("top.qcow2");
        (await Qemu("create", "-q", "-f", "qcow2", "-b", src, "-F", "qcow2", top)).Ok();
        string topBefore = Convert.ToHexString(await File.ReadAllBytesAsync(top));
        await BothRefuseAsync("Invalid cache option: bogus", "convert", "-t", "bogus", "-O", "raw", src, dir.File("out.raw"));
        await BothRefuseAsync("Invalid source cache option: bogus", "convert", "-T", "bogus", "-O", "raw", src, dir.File("out.raw"));
        await BothRefuseAsync("Invalid cache option: bogus", "commit", "-t", "bogus", top);
        await BothRefuseAsync("Invalid source cache option: bogus", "rebase", "-T", "bogus", "-u", "-b", src, "-F", "qcow2", top);
        await BothRefuseAsync("Invalid cache option: bogus", "amend", "-t", "bogus", "-o", "lazy_refcounts=on", top);
        await BothRefuseAsync("Invalid cache mode", "bench", "-t", "bogus", "-c", "1", src);
        Assert.Equal(topBefore, Convert.ToHexString(await File.ReadAllBytesAsync(top)));

        // "off" is qemu's other name for none.
        (await Ours("convert", "-t", "off", "-O", "raw", src, dir.File("off.raw"))).Ok();
        (await Qemu("compare", src, dir.File("off.raw"))).Ok();
    }

    [Theory]
    [InlineData("Invalid request count specified", "-c", "abc")]
    [InlineData("Invalid request count specified", "-c", "-1")]
    [InlineData("Invalid queue depth specified", "-d", "x")]
    [InlineData("Invalid pattern byte specified", "--pattern=300")]
    [InlineData("Invalid flush interval specified", "--flush-interval=abc")]
    [InlineData("Invalid step_size specified", "-S", "abc")]
    [InlineData("Invalid buffer size specified. Must be between 0 and 2147483647.", "-s", "3G")]
    public async Task Bench_refuses_bad_numbers_in_one_line_without_a_stack_trace(string reason, params string[] option)
    {
        using var dir = new TempDir();
        string src = await SourceAsync(dir);
        await BothRefuseAsync(reason, ["bench", .. option, src]);
    }

    [Fact]
    public async Task Create_and_rebase_need_an_explicit_backing_format()
    {
        using var dir = new TempDir();
        string src = await SourceAsync(dir);
        string top = dir.File("top.qcow2");
        await BothRefuseAsync("Backing file specified without backing format", "create", "-f", "qcow2", "-b", src, top);
        await BothRefuseAsync("Backing file specified without backing format", "create", "-f", "qcow2", "-u", "-b", src, top, "4M");
        Assert.False(File.Exists(top));

        // qemu-img itself writes to the image before refusing, so ours is checked on an image of its own.
        string theirs = dir.File("theirs.qcow2");
        (await Qemu("create", "-q", "-f", "qcow2", top, "4M")).Ok();
        File.Copy(top, theirs);
        string before = Convert.ToHexString(await File.ReadAllBytesAsync(top));
        foreach (string[] mode in new[] { new[] { "-u" }, Array.Empty<string>() })
        {
            var q = await Qemu(["rebase", .. mode, "-b", src, theirs]);
            var o = await Ours(["rebase", .. mode, "-b", src, top]);
            Assert.Equal(1, q.ExitCode);
            Assert.Equal(1, o.ExitCode);
            Assert.Contains("backing format must be specified", q.Stderr, StringComparison.Ordinal);
            Assert.Contains("backing format must be specified", o.Stderr, StringComparison.Ordinal);
        }

        Assert.Equal(before, Convert.ToHexString(await File.ReadAllBytesAsync(top)));
    }

    [Theory]
    [InlineData("convert", "-O", "qcow2", "-o", "refcount_bits=abc", "Parameter 'refcount_bits' expects a number")]
    [InlineData("convert", "-O", "qcow2", "-o", "lazy_refcounts=maybe", "Parameter 'lazy_refcounts' expects 'on' or 'off'")]
    [InlineData("measure", "-O", "qcow2", "-o", "refcount_bits=abc", "Parameter 'refcount_bits' expects a number")]
    public async Task Bad_target_options_are_refused_in_one_line(string command, string fmtFlag, string fmt, string optFlag, string opt, string reason)
    {
        using var dir = new TempDir();
        string src = await SourceAsync(dir);
        string[] args = command == "convert" ? [command, fmtFlag, fmt, optFlag, opt, src, dir.File("out.qcow2")] : [command, fmtFlag, fmt, optFlag, opt, src];
        await BothRefuseAsync(reason, args);
    }

    [Fact]
    public async Task O_help_lists_the_options_and_succeeds_without_acting()
    {
        using var dir = new TempDir();
        string src = await SourceAsync(dir);
        string raw = dir.File("r.raw");
        (await Qemu("create", "-q", "-f", "raw", raw, "1M")).Ok();
        string dst = dir.File("out.qcow2");
        string[][] cases =
        [
            ["create", "-f", "qcow2", "-o", "help"],
            ["create", "-f", "qcow2", "-o", "cluster_size=4k,?"],
            ["convert", "-O", "qcow2", "-o", "help", src, dst],
            ["amend", "-o", "help", src],
        ];
        foreach (var args in cases)
        {
            var q = await Qemu(args);
            var o = await Ours(args);
            Assert.Equal(0, q.ExitCode);
            Assert.Equal(0, o.ExitCode);
            foreach (string option in new[] { "compat=<str>", "lazy_refcounts=<bool (on/off)>", "refcount_bits=<num>" })
            {
                Assert.Contains(option, q.Stdout, StringComparison.Ordinal);
                Assert.Contains(option, o.Stdout, StringComparison.Ordinal);
            }
        }

        Assert.False(File.Exists(dst));
        await BothRefuseAsync("Format driver 'raw' does not support option amendment", "amend", "-f", "raw", "-o", "help", raw);
    }

    [Fact]
    public async Task An_image_another_process_writes_is_refused_with_qemu_img_hint()
    {
        using var dir = new TempDir();
        string src = await SourceAsync(dir);
        string img = dir.File("busy.qcow2");
        (await Qemu("create", "-q", "-f", "qcow2", img, "4M")).Ok();
        string before = Convert.ToHexString(await File.ReadAllBytesAsync(img));

        using var holder = await HoldAsync(img);
        try
        {
            string[][] cases =
            [
                ["amend", "-o", "lazy_refcounts=on", img],
                ["resize", img, "8M"],
                ["convert", "-n", "-O", "qcow2", src, img],
            ];
            foreach (var args in cases)
            {
                var q = await Qemu(args);
                var o = await Ours(args);
                Assert.Equal(1, q.ExitCode);
                Assert.Equal(1, o.ExitCode);
                string hint = $"Is another process using the image [{img}]?";
                Assert.Contains($"Could not open '{img}': Failed to get \"write\" lock", o.Stderr, StringComparison.Ordinal);
                Assert.Contains(hint, q.Stderr, StringComparison.Ordinal);
                Assert.Contains(hint, o.Stderr, StringComparison.Ordinal);
            }
        }
        finally
        {
            await ReleaseAsync(holder);
        }

        Assert.Equal(before, Convert.ToHexString(await File.ReadAllBytesAsync(img)));
    }

    /// <summary>
    /// qemu-io without -c holds the image read-write until its stdin closes; returns once its prompt shows the
    /// image is open. (Polling with qemu-img instead would race qemu-io's own lock check and make it fail.)
    /// </summary>
    private static async Task<System.Diagnostics.Process> HoldAsync(string img)
    {
        var psi = new System.Diagnostics.ProcessStartInfo(Tools.Require("qemu-io")) { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
        psi.ArgumentList.Add(img);
        var holder = System.Diagnostics.Process.Start(psi)!;
        var seen = new System.Text.StringBuilder();
        var buf = new char[64];
        using var cts = new CancellationTokenSource(10_000);
        while (!seen.ToString().Contains("qemu-io> ", StringComparison.Ordinal))
        {
            int n = await holder.StandardOutput.ReadAsync(buf, cts.Token);
            Assert.True(n > 0, "qemu-io ended before opening the image: " + seen);
            seen.Append(buf, 0, n);
        }

        Assert.True((await Qemu("info", img)).ExitCode == 1, "qemu-io holds the image: " + seen);
        return holder;
    }

    private static async Task ReleaseAsync(System.Diagnostics.Process holder)
    {
        holder.StandardInput.Close();
        await holder.WaitForExitAsync();
    }

    [Fact]
    public async Task Replacing_an_image_another_process_writes_is_refused_and_leaves_it_intact()
    {
        using var dir = new TempDir();
        string src = await SourceAsync(dir);
        string img = dir.File("busy.qcow2");
        (await Qemu("create", "-q", "-f", "qcow2", img, "4M")).Ok();
        (await Tools.RunAsync("qemu-io", "-c", "write -P 0x77 0 64k", img)).Ok();
        string before = Convert.ToHexString(await File.ReadAllBytesAsync(img));
        using var holder = await HoldAsync(img);
        try
        {
            string[][] cases =
            [
                ["create", "-f", "qcow2", img, "1M"],
                ["create", "-f", "raw", img, "1M"],
                ["convert", "-O", "raw", src, img],
                ["dd", "-O", "qcow2", "if=" + src, "of=" + img, "bs=64k", "count=1"],
            ];
            foreach (var args in cases)
            {
                await BothRefuseAsync("Failed to get \"write\" lock", args);
                Assert.Equal(before, Convert.ToHexString(await File.ReadAllBytesAsync(img)));
            }
        }
        finally
        {
            await ReleaseAsync(holder);
        }

        // Once it is free, both replace it.
        (await Ours("create", "-q", "-f", "qcow2", img, "1M")).Ok();
        Assert.Equal(1L << 20, JsonDocument.Parse((await Qemu("info", "--output=json", img)).Ok().Stdout).RootElement.GetProperty("virtual-size").GetInt64());
    }

    [Fact]
    public async Task Dd_onto_its_own_input_is_refused_and_leaves_it_intact()
    {
        using var dir = new TempDir();
        string src = await SourceAsync(dir);
        string before = Convert.ToHexString(await File.ReadAllBytesAsync(src));
        await BothRefuseAsync("Failed to get \"write\" lock", "dd", "-O", "qcow2", "if=" + src, "of=" + src);
        Assert.Equal(before, Convert.ToHexString(await File.ReadAllBytesAsync(src)));
    }

    [Fact]
    public async Task Convert_onto_its_own_source_or_backing_file_is_refused_and_leaves_it_intact()
    {
        using var dir = new TempDir();
        string src = await SourceAsync(dir);
        string top = dir.File("top.qcow2");
        (await Qemu("create", "-q", "-f", "qcow2", "-b", src, "-F", "qcow2", top)).Ok();
        string link = dir.File("link.qcow2");
        File.CreateSymbolicLink(link, src);
        string before = Convert.ToHexString(await File.ReadAllBytesAsync(src));
        string[][] cases =
        [
            ["convert", "-O", "qcow2", src, src],
            ["convert", "-O", "raw", top, src],
            ["convert", "-O", "qcow2", link, src],
            ["convert", "-n", "-O", "qcow2", top, link],
        ];
        foreach (var args in cases)
            await BothRefuseAsync("Failed to get \"write\" lock", args);
        Assert.Equal(before, Convert.ToHexString(await File.ReadAllBytesAsync(src)));
    }

    [Fact]
    public async Task Convert_and_measure_l_read_the_snapshot_as_qemu_img_does()
    {
        using var dir = new TempDir();
        string src = await SourceAsync(dir);
        (await Qemu("snapshot", "-c", "s1", src)).Ok();
        (await Tools.RunAsync("qemu-io", "-c", "write -P 0x33 0 1M", src)).Ok();
        (await Qemu("resize", src, "+1M")).Ok();
        // Every way qemu-img names a snapshot gives what qemu-img itself reads out of it.
        string theirs = dir.File("theirs.raw");
        (await Qemu("convert", "-l", "s1", "-O", "raw", src, theirs)).Ok();
        foreach (var param in new[] { "s1", "snapshot.name=s1", "snapshot.id=1" })
        {
            string ours = dir.File("ours.raw");
            File.Delete(ours);
            (await Ours("convert", "-l", param, "-O", "raw", src, ours)).Ok();
            Assert.Equal(File.ReadAllBytes(theirs), File.ReadAllBytes(ours));
        }

        string q = dir.File("ours.qcow2");
        (await Ours("convert", "-l", "s1", "-O", "qcow2", src, q)).Ok();
        (await Qemu("compare", "-f", "raw", "-F", "qcow2", theirs, q)).Ok();
        Assert.Equal((await Qemu("measure", "-l", "s1", "-O", "qcow2", src)).Ok().Stdout, (await Ours("measure", "-l", "s1", "-O", "qcow2", src)).Ok().Stdout);

        // A missing snapshot is refused before a target exists; the image itself is untouched.
        string dst = dir.File("none.raw");
        var o = await Ours("convert", "-l", "nosuch", "-O", "raw", src, dst);
        Assert.Equal(1, o.ExitCode);
        Assert.Equal("sharpblock: Failed to load snapshot: Can't find snapshot", o.Stderr.Trim());
        Assert.False(File.Exists(dst));
        (await Qemu("check", src)).Ok();
    }

    [Fact]
    public async Task Amend_size_resizes_both_ways_and_backing_or_creation_options_are_refused_as_qemu_img_does()
    {
        using var dir = new TempDir();
        string ours = await SourceAsync(dir);
        string theirs = dir.File("theirs.qcow2");
        File.Copy(ours, theirs);
        foreach (var o in new[] { "size=1M", "size=3M,lazy_refcounts=on" })
        {
            (await Qemu("amend", "-o", o, theirs)).Ok();
            (await Ours("amend", "-o", o, ours)).Ok();
            (await Qemu("check", ours)).Ok();
            (await Qemu("compare", "-s", theirs, ours)).Ok();
        }

        Assert.Contains("virtual size: 3 MiB", (await Qemu("info", ours)).Ok().Stdout, StringComparison.Ordinal);
        foreach (var (o, message) in new[]
        {
            ("backing_file=x.qcow2", "Cannot amend the backing file\nYou can use 'qemu-img rebase' instead."),
            ("cluster_size=4k", "Invalid parameter 'cluster_size'\nThis option is only supported for image creation"),
        })
        {
            var q = await Qemu("amend", "-o", o, theirs);
            var r = await Ours("amend", "-o", o, ours);
            Assert.Equal(q.ExitCode, r.ExitCode);
            Assert.Contains(message, q.Stderr, StringComparison.Ordinal);
            Assert.Equal("sharpblock: " + message, r.Stderr.Trim());
        }
    }

    [Fact]
    public async Task Bench_flush_interval_is_checked_like_qemu_img_and_flushes_in_both_modes()
    {
        using var dir = new TempDir();
        string img = dir.File("b.qcow2");
        (await Qemu("create", "-q", "-f", "qcow2", img, "16M")).Ok();
        foreach (var (args, message) in new[]
        {
            (new[] { "bench", "--flush-interval=10", "-c", "100", img }, "--flush-interval is only available in write tests"),
            (new[] { "bench", "-w", "--flush-interval=10", "-c", "100", img }, "Flush interval can't be smaller than depth"),
        })
        {
            var q = await Qemu(args);
            var r = await Ours(args);
            Assert.Equal(1, q.ExitCode);
            Assert.Contains(message, q.Stderr, StringComparison.Ordinal);
            Assert.Equal(1, r.ExitCode);
            Assert.Equal("sharpblock: " + message, r.Stderr.Trim());
        }

        foreach (var mode in new[] { "--pattern=1", "--no-drain" })
        {
            (await Ours("bench", "-w", "-d", "4", "--flush-interval=10", mode, "-c", "1000", "-q", img)).Ok();
            (await Qemu("check", img)).Ok();
        }

        (await Tools.RunAsync("qemu-io", "-c", "read -P 0 0 4000k", img)).Ok();
    }

    [Theory]
    [InlineData("--start-offset=1M", "--max-length=1M")]
    [InlineData("--start-offset=512k")]
    [InlineData("--max-length=2304k")]
    [InlineData("--start-offset=5M")]
    [InlineData("--max-length=0")]
    public async Task Map_start_offset_and_max_length_give_qemu_img_extents(params string[] range)
    {
        using var dir = new TempDir();
        string src = await SourceAsync(dir);
        string Strip(string json)
        {
            // Host offsets depend on each tool's allocator; the guest extents must match exactly.
            var rows = JsonDocument.Parse(json).RootElement.EnumerateArray().Select(e =>
                $"{e.GetProperty("start")} {e.GetProperty("length")} {e.GetProperty("depth")} {e.GetProperty("present")} {e.GetProperty("zero")} {e.GetProperty("data")}");
            return string.Join("\n", rows);
        }

        var q = (await Qemu(["map", "--output=json", .. range, src])).Ok();
        var o = (await Ours(["map", "--output=json", .. range, src])).Ok();
        Assert.Equal(Strip(q.Stdout), Strip(o.Stdout));
    }

    [Fact]
    public async Task Map_refuses_a_bad_start_offset_or_max_length()
    {
        using var dir = new TempDir();
        string src = await SourceAsync(dir);
        await BothRefuseAsync("Invalid start offset specified", "map", "--start-offset=abc", src);
        await BothRefuseAsync("Invalid max length specified", "map", "--max-length=-1", src);
    }

    [Fact]
    public async Task Convert_target_image_opts_is_a_flag_that_needs_n()
    {
        using var dir = new TempDir();
        string src = await SourceAsync(dir);
        string dst = dir.File("t.qcow2");
        await BothRefuseAsync("--target-image-opts requires use of -n flag", "convert", "--target-image-opts", "-O", "raw", src, $"driver=raw,file.filename={dst}");
        Assert.False(File.Exists(dst));

        (await Qemu("create", "-q", "-f", "qcow2", dst, "4M")).Ok();
        (await Ours("convert", "-n", "--target-image-opts", src, $"driver=qcow2,file.driver=file,file.filename={dst}")).Ok();
        (await Qemu("compare", src, dst)).Ok();
        (await Qemu("check", dst)).Ok();
    }

    [Fact]
    public async Task Compare_refuses_a_bad_T_with_exit_code_2()
    {
        using var dir = new TempDir();
        string src = await SourceAsync(dir);
        var q = await Qemu("compare", "-T", "bogus", src, src);
        var o = await Ours("compare", "-T", "bogus", src, src);
        Assert.Equal(2, q.ExitCode);
        Assert.Equal(2, o.ExitCode);
        Assert.Contains("Invalid source cache option: bogus", o.Stderr, StringComparison.Ordinal);
    }
}
