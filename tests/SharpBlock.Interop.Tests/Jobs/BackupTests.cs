using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Jobs;

/// <summary>drive-backup over QMP: the target is the device as it was at the start, whatever is written meanwhile.</summary>
public class BackupTests
{
    private const int Size = 4 << 20;


    [Fact]
    public async Task Full_backup_is_a_point_in_time_copy_while_the_guest_writes()
    {
        await using var h = QmpServerHarness.Start();
        string source = h.Dir.PatternFile("source.img", Size, seed: 5);
        byte[] atStart = File.ReadAllBytes(source);
        byte[] now = (byte[])atStart.Clone();
        await using var c = await h.ConnectAsync();
        await c.ReturnAsync("blockdev-add", QmpServerHarness.RawDevice("d0", source));
        string target = h.Dir.File("backup.img");
        await c.ReturnAsync("drive-backup", $$$"""{"device": "d0", "target": "{{{target}}}", "sync": "full", "speed": 4194304}""");
        var dev = h.Graph.FindDevice("d0")!;
        var rng = new Random(9);
        for (int i = 0; i < 30; i++)
        {
            int off = rng.Next(0, Size - 9000), len = rng.Next(1, 9000);
            var data = new byte[len];
            rng.NextBytes(data);
            await dev.WriteAsync(off, data);
            data.CopyTo(now, off);
        }

        await dev.WriteZeroesAsync(Size - 200_000, 100_000);
        Array.Clear(now, Size - 200_000, 100_000);
        var done = await c.WaitEventAsync("BLOCK_JOB_COMPLETED");
        Assert.Equal("backup", done.GetProperty("data").GetProperty("type").GetString());
        Assert.False(done.GetProperty("data").TryGetProperty("error", out _), done.ToString());
        Assert.Equal(Size, done.GetProperty("data").GetProperty("len").GetInt64());
        await dev.FlushAsync();
        await Tools.AssertRawImageEqualsAsync(target, atStart, h.Dir.Path);
        await Tools.AssertRawImageEqualsAsync(source, now, h.Dir.Path);
    }

    [Fact]
    public async Task Sync_none_copies_only_what_is_about_to_be_overwritten_until_cancelled()
    {
        await using var h = QmpServerHarness.Start();
        string source = h.Dir.PatternFile("source.img", Size, seed: 6);
        byte[] atStart = File.ReadAllBytes(source);
        await using var c = await h.ConnectAsync();
        await c.ReturnAsync("blockdev-add", QmpServerHarness.RawDevice("d0", source));
        string target = h.Dir.File("cbw.qcow2");
        await c.ReturnAsync("drive-backup", $$$"""{"device": "d0", "target": "{{{target}}}", "sync": "none", "format": "qcow2"}""");
        await h.Graph.FindDevice("d0")!.WriteAsync(65536 * 3 + 10, new byte[100]);
        await c.ReturnAsync("block-job-cancel", """{"device": "d0"}""");
        await c.WaitEventAsync("BLOCK_JOB_CANCELLED");
        // Exactly the cluster that was written is allocated in the target, holding the old data.
        var map = (await Tools.RunAsync("qemu-img", "map", "-U", "--output=json", target)).Ok().Stdout;
        var own = System.Text.Json.JsonDocument.Parse(map).RootElement.EnumerateArray()
            .Where(e => e.GetProperty("depth").GetInt32() == 0 && e.GetProperty("data").GetBoolean())
            .Select(e => (e.GetProperty("start").GetInt64(), e.GetProperty("length").GetInt64())).ToArray();
        Assert.Equal([(65536L * 3, 65536L)], own);
        // Through its backing file (the source) the target reads as the device at the start of the job.
        string whole = h.Dir.File("whole.raw");
        (await Tools.RunAsync("qemu-img", "convert", "-U", "-f", "qcow2", "-O", "raw", target, whole)).Ok();
        Assert.Equal(atStart, File.ReadAllBytes(whole));
    }

    [Fact]
    public async Task Backup_to_an_existing_target_of_the_wrong_size_is_refused()
    {
        await using var h = QmpServerHarness.Start();
        await using var c = await h.ConnectAsync();
        await c.ReturnAsync("blockdev-add", QmpServerHarness.RawDevice("d0", h.Dir.PatternFile("s.img", Size)));
        string small = h.Dir.PatternFile("small.img", 4096);
        Assert.Equal(("GenericError", "Source and target image have different sizes"),
            await c.ErrorAsync("drive-backup", $$$"""{"device": "d0", "target": "{{{small}}}", "sync": "full", "mode": "existing"}"""));
        Assert.Equal(0, (await c.ReturnAsync("query-block-jobs")).GetArrayLength());
        // The refused target was closed again: it can be opened read-write.
        await c.ReturnAsync("blockdev-add", QmpServerHarness.RawDevice("d1", small));
    }
}
