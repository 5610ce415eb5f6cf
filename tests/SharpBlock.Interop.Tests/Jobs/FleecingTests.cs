using System.Text.Json;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Jobs;

/// <summary>
/// sync=none jobs make a target whose backing file is the source, as QEMU does; image fleecing (backup
/// sync=none, the target exported over NBD) then serves the device as it was when the job started, read by
/// nbdcopy while the guest keeps writing, and judged by qemu-img compare.
/// </summary>
public class FleecingTests
{
    private const int Size = 8 << 20;

    private static async Task<JsonElement> InfoAsync(string image)
    {
        var r = (await Tools.RunAsync("qemu-img", "info", "-U", "--output=json", image)).Ok();
        return JsonDocument.Parse(r.Stdout).RootElement.Clone();
    }

    private static async Task<string> NodeOfFileAsync(QmpTestClient c, string file)
    {
        foreach (var n in (await c.ReturnAsync("query-named-block-nodes")).EnumerateArray())
        {
            if (n.GetProperty("file").GetString() == file && n.GetProperty("drv").GetString() == "qcow2")
                return n.GetProperty("node-name").GetString()!;
        }

        throw new InvalidOperationException("no qcow2 node over " + file);
    }

    [Fact]
    public async Task Backup_sync_none_target_exported_over_nbd_is_the_point_in_time_image_while_the_guest_writes()
    {
        await using var h = await QmpHarness.StartAsync();
        string source = h.Dir.PatternFile("source.raw", Size, seed: 11);
        byte[] atStart = File.ReadAllBytes(source);
        byte[] now = (byte[])atStart.Clone();
        var dev = await h.AddRawAsync("d0", source);
        string fleece = h.Dir.File("fleece.qcow2");
        await h.Client.ReturnAsync("drive-backup", $$"""{"device": "d0", "target": {{JsonSerializer.Serialize(fleece)}}, "sync": "none", "format": "qcow2"}""");
        var info = await InfoAsync(fleece);
        Assert.Equal(source, info.GetProperty("backing-filename").GetString());
        Assert.Equal("raw", info.GetProperty("backing-filename-format").GetString());

        string node = await NodeOfFileAsync(h.Client, fleece);
        await h.StartNbdAsync();
        await h.Client.ReturnAsync("nbd-server-add", $$"""{"device": "{{node}}"}""");
        string url = $"nbd+unix:///{Uri.EscapeDataString(node)}?socket={h.NbdSocket}";

        string copy = h.Dir.File("copy.raw");
        var nbdcopy = Tools.RunAsync("nbdcopy", url, copy);
        var rng = new Random(12);
        int writesDuringCopy = 0;
        while (!nbdcopy.IsCompleted || writesDuringCopy == 0)
        {
            int off = rng.Next(0, Size - 70_000), len = rng.Next(1, 70_000);
            var data = new byte[len];
            rng.NextBytes(data);
            await dev.WriteAsync(off, data);
            data.CopyTo(now, off);
            if (!nbdcopy.IsCompleted)
                writesDuringCopy++;
        }

        (await nbdcopy).Ok();
        Assert.True(writesDuringCopy > 0);
        // The copy is the device at the start of the job; the device itself moved on.
        await Tools.AssertRawImageEqualsAsync(copy, atStart, h.Dir.Path);
        await dev.FlushAsync();
        await Tools.AssertRawImageEqualsAsync(source, now, h.Dir.Path);
        Assert.NotEqual(atStart, now);

        // The end of fleecing: the export goes, then the job, which closes the target.
        await h.Client.ReturnAsync("nbd-server-stop");
        await h.Client.ReturnAsync("block-job-cancel", """{"device": "d0"}""");
        await h.Client.WaitEventAsync("BLOCK_JOB_CANCELLED");
        Assert.StartsWith("No errors were found on the image.", (await Tools.RunAsync("qemu-img", "check", fleece)).Ok().Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Mirror_sync_none_target_has_the_source_as_backing_and_matches_it_after_cancel()
    {
        await using var h = await QmpHarness.StartAsync();
        string source = h.Dir.PatternFile("source.raw", Size, seed: 13);
        var dev = await h.AddRawAsync("d0", source);
        string target = h.Dir.File("mirror.qcow2");
        await h.Client.ReturnAsync("drive-mirror", $$"""{"device": "d0", "target": {{JsonSerializer.Serialize(target)}}, "sync": "none", "format": "qcow2"}""");
        var info = await InfoAsync(target);
        Assert.Equal(source, info.GetProperty("backing-filename").GetString());
        Assert.Equal("raw", info.GetProperty("backing-filename-format").GetString());
        await h.Client.WaitEventAsync("BLOCK_JOB_READY");
        await dev.WriteAsync(3 << 20, new byte[100_000].Select((_, i) => (byte)(i * 7)).ToArray());
        await h.Client.ReturnAsync("block-job-cancel", """{"device": "d0"}""");
        await h.Client.WaitEventAsync("BLOCK_JOB_COMPLETED");
        await dev.FlushAsync();
        // The target holds only what was written since the start; through its backing file it is the whole disk.
        Assert.Equal("Images are identical.", (await Tools.RunAsync("qemu-img", "compare", "-U", "-f", "qcow2", "-F", "raw", target, source)).Ok().Stdout.Trim());
    }

    [Fact]
    public async Task Sync_none_into_a_format_without_backing_files_is_refused_as_qemu_does()
    {
        await using var h = await QmpHarness.StartAsync();
        string source = h.Dir.PatternFile("source.raw", Size, seed: 14);
        await h.AddRawAsync("d0", source);
        string target = h.Dir.File("plain.raw");
        Assert.Equal(("GenericError", "Backing file not supported for file format 'raw'"),
            await h.Client.ErrorAsync("drive-backup", $$"""{"device": "d0", "target": {{JsonSerializer.Serialize(target)}}, "sync": "none"}"""));
        Assert.False(File.Exists(target));
        Assert.Empty((await h.Client.ReturnAsync("query-block-jobs")).EnumerateArray());
    }
}
