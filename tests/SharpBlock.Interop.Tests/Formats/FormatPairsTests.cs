using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Formats;

/// <summary>
/// The formats meet each other: every ordered pair among raw, qcow2, vmdk, vhdx, vpc and vdi converts through
/// us with the content qemu-img sees unchanged, and block jobs move data between formats because each is an
/// ordinary node.
/// </summary>
public class FormatPairsTests
{
    private static readonly string[] Formats = ["raw", "qcow2", "vmdk", "vhdx", "vpc", "vdi"];

    /// <summary>A disk of random, text-like and zero MiBs (some zeros written, some holes), 8 MiB in all.</summary>
    private static string MixedDisk(TempDir dir)
    {
        string path = dir.File("mixed.raw");
        var rng = new Random(31);
        using var f = new FileStream(path, FileMode.Create);
        f.SetLength(8 << 20);
        var mib = new byte[1 << 20];
        for (int i = 0; i < 8; i++)
        {
            switch (i % 4)
            {
                case 0:
                    rng.NextBytes(mib);
                    break;
                case 1:
                    for (int k = 0; k < mib.Length; k++)
                        mib[k] = (byte)"the block layer writes clusters\n"[k % 32];
                    break;
                case 2:
                    Array.Clear(mib);
                    break;
                default:
                    continue; // a hole
            }

            f.Position = (long)i << 20;
            f.Write(mib);
        }

        return path;
    }

    [Fact]
    public async Task Every_pair_of_formats_converts_through_us_and_reads_back_the_same()
    {
        using var dir = new TempDir();
        string raw = MixedDisk(dir);
        // One image per format, made by us from the mixed disk; then every ordered pair from those.
        foreach (string fmt in Formats)
            (await Tools.RunAsync("sharpblock", "img", "convert", "-f", "raw", "-O", fmt, raw, dir.File("src." + fmt))).Ok();
        var failures = new List<string>();
        foreach (string from in Formats)
        {
            foreach (string to in Formats)
            {
                if (from == to)
                    continue;
                string src = dir.File("src." + from), dst = dir.File($"{from}-to.{to}");
                var r = await Tools.RunAsync("sharpblock", "img", "convert", "-f", from, "-O", to, src, dst);
                var cmp = r.ExitCode == 0 ? await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", to, raw, dst) : r;
                if (r.ExitCode != 0 || cmp.ExitCode != 0)
                    failures.Add($"{from} -> {to}: {r.Stderr}{cmp.Stdout}{cmp.Stderr}".Trim());
                else if (to is "qcow2" or "vmdk" or "vhdx" or "vdi" && (await Tools.RunAsync("qemu-img", "check", "-f", to, dst)).ExitCode != 0)
                    failures.Add($"{from} -> {to}: qemu-img check finds errors");
                File.Delete(dst);
            }
        }

        Assert.True(failures.Count == 0, string.Join('\n', failures));
    }

    [Theory]
    [InlineData("vmdk", "qcow2", "drive-mirror")]
    [InlineData("qcow2", "vhdx", "drive-backup")]
    [InlineData("vdi", "vmdk", "drive-mirror")]
    [InlineData("vpc", "vdi", "drive-backup")]
    public async Task A_job_copies_a_device_of_one_format_into_an_image_of_another(string from, string to, string job)
    {
        await using var h = QmpServerHarness.Start();
        string raw = MixedDisk(h.Dir);
        string source = h.Dir.File("source." + from), target = h.Dir.File("target." + to);
        (await Tools.RunAsync("sharpblock", "img", "convert", "-f", "raw", "-O", from, raw, source)).Ok();
        await using var c = await h.ConnectAsync();
        await c.ReturnAsync("blockdev-add", "{\"options\": {\"driver\": \"" + from + "\", \"id\": \"d0\", \"file\": {\"driver\": \"file\", \"filename\": \"" + source + "\"}}}");
        await c.ReturnAsync(job, $$$"""{"device": "d0", "target": "{{{target}}}", "format": "{{{to}}}", "sync": "full"}""");
        if (job == "drive-mirror")
        {
            await c.WaitEventAsync("BLOCK_JOB_READY");
            await c.ReturnAsync("block-job-complete", """{"device": "d0"}""");
        }

        var done = await c.WaitEventAsync("BLOCK_JOB_COMPLETED");
        Assert.False(done.GetProperty("data").TryGetProperty("error", out var error), error.ToString());
        await h.Graph.FlushAllAsync();
        // A mirrored device now runs on the target, so qemu-img looks with -U (shared, read-only).
        (await Tools.RunAsync("qemu-img", "compare", "-U", "-f", "raw", "-F", to, raw, target)).Ok();
        if (to != "vpc")
            (await Tools.RunAsync("qemu-img", "check", "-U", "-f", to, target)).Ok();
    }
}
