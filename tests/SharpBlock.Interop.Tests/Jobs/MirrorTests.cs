using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Jobs;

/// <summary>drive-mirror over QMP on real files, with writes going on during the copy, checked by qemu-img.</summary>
[Collection(TimingCollection.Name)]
public class MirrorTests
{
    private const int Size = 4 << 20;

    private static async Task<(QmpServerHarness H, QmpTestClient C, string Source, byte[] Model)> StartAsync()
    {
        var h = QmpServerHarness.Start();
        string source = h.Dir.PatternFile("source.img", Size, seed: 11);
        var c = await h.ConnectAsync();
        await c.ReturnAsync("blockdev-add", QmpServerHarness.RawDevice("d0", source));
        return (h, c, source, File.ReadAllBytes(source));
    }

    private static async Task GuestWriteAsync(QmpServerHarness h, byte[] model, int offset, int length, byte value)
    {
        var data = Enumerable.Repeat(value, length).ToArray();
        await h.Graph.FindDevice("d0")!.WriteAsync(offset, data);
        data.CopyTo(model, offset);
    }

    /// <summary>The first job's query-block-jobs entry once it satisfies the condition (polled, 30 s at most).</summary>
    private static async Task<System.Text.Json.JsonElement> JobWhenAsync(QmpTestClient c, Func<System.Text.Json.JsonElement, bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            var job = (await c.ReturnAsync("query-block-jobs"))[0];
            if (condition(job))
                return job;
            Assert.True(DateTime.UtcNow < deadline, "the job never reached the expected state: " + job);
            await Task.Delay(20);
        }
    }

    [Fact]
    public async Task Mirror_with_concurrent_writes_completes_and_the_device_moves_to_the_target()
    {
        var (h, c, source, model) = await StartAsync();
        await using var hh = h;
        await using var cc = c;
        string target = h.Dir.File("target.img");
        // Slow enough that guest writes land while the copy runs.
        await c.ReturnAsync("drive-mirror", $$$"""{"device": "d0", "target": "{{{target}}}", "sync": "full", "speed": 8388608, "granularity": 65536}""");
        var jobs = await c.ReturnAsync("query-block-jobs");
        var job = jobs[0];
        Assert.Equal("mirror", job.GetProperty("type").GetString());
        Assert.Equal("d0", job.GetProperty("device").GetString());
        Assert.Equal(Size, job.GetProperty("len").GetInt64());
        Assert.Equal(8388608, job.GetProperty("speed").GetInt64());
        Assert.Equal("ok", job.GetProperty("io-status").GetString());
        var bitmaps = (await c.ReturnAsync("query-block"))[0].GetProperty("dirty-bitmaps");
        Assert.Equal(65536, bitmaps[0].GetProperty("granularity").GetInt64());

        for (int i = 0; i < 20; i++)
            await GuestWriteAsync(h, model, (i * 197_371) % (Size - 5000), 5000, (byte)(i + 1));

        var ready = await c.WaitEventAsync("BLOCK_JOB_READY");
        Assert.Equal("d0", ready.GetProperty("data").GetProperty("device").GetString());
        Assert.Equal("mirror", ready.GetProperty("data").GetProperty("type").GetString());
        // Writes after ready are mirrored too.
        await GuestWriteAsync(h, model, 4096, 70000, 0xEE);
        await c.ReturnAsync("block-job-complete", """{"device": "d0"}""");
        var done = await c.WaitEventAsync("BLOCK_JOB_COMPLETED");
        Assert.False(done.GetProperty("data").TryGetProperty("error", out _), done.ToString());
        Assert.Equal(Size, done.GetProperty("data").GetProperty("offset").GetInt64());
        Assert.Equal(0, (await c.ReturnAsync("query-block-jobs")).GetArrayLength());

        // The device now writes to the target; the source no longer changes.
        Assert.Equal(target, (await c.ReturnAsync("query-block"))[0].GetProperty("inserted").GetProperty("file").GetString());
        byte[] sourceAtPivot = (byte[])model.Clone();
        await GuestWriteAsync(h, model, 0, 512, 0x77);
        await h.Graph.FindDevice("d0")!.FlushAsync();
        await Tools.AssertRawImageEqualsAsync(target, model, h.Dir.Path);
        await Tools.AssertRawImageEqualsAsync(source, sourceAtPivot, h.Dir.Path);
    }

    [Fact]
    public async Task Cancel_after_ready_leaves_a_consistent_copy_and_reports_completed()
    {
        var (h, c, source, model) = await StartAsync();
        await using var hh = h;
        await using var cc = c;
        string target = h.Dir.File("target.img");
        await c.ReturnAsync("drive-mirror", $$$"""{"device": "d0", "target": "{{{target}}}", "sync": "full", "format": "raw"}""");
        await c.WaitEventAsync("BLOCK_JOB_READY");
        await GuestWriteAsync(h, model, 100_000, 3000, 0x42);
        await c.ReturnAsync("block-job-cancel", """{"device": "d0"}""");
        var done = await c.WaitEventAsync("BLOCK_JOB_COMPLETED");
        Assert.Equal("mirror", done.GetProperty("data").GetProperty("type").GetString());
        Assert.Equal(source, (await c.ReturnAsync("query-block"))[0].GetProperty("inserted").GetProperty("file").GetString());
        await Tools.AssertRawImageEqualsAsync(target, model, h.Dir.Path);
    }

    [Fact]
    public async Task Pause_resume_speed_and_cancel_of_a_running_mirror()
    {
        var (h, c, _, _) = await StartAsync();
        await using var hh = h;
        await using var cc = c;
        string target = h.Dir.File("target.img");
        await c.ReturnAsync("drive-mirror", $$$"""{"device": "d0", "target": "{{{target}}}", "sync": "full", "speed": 1048576}""");
        Assert.Equal(("GenericError", "Device 'd0' is in use"),
            await c.ErrorAsync("drive-backup", $$$"""{"device": "d0", "target": "{{{h.Dir.File("b.img")}}}", "sync": "full"}"""));
        Assert.Equal(("GenericError", "Device 'd0' is busy: block device is in use by block job: mirror"), await c.ErrorAsync("eject", """{"device": "d0"}"""));
        Assert.Equal("GenericError", (await c.ErrorAsync("block-job-complete", """{"device": "d0"}""")).Class);
        await c.ReturnAsync("block-job-pause", """{"device": "d0"}""");
        // A pause takes effect at the job's next pause point: wait for it to stop being busy.
        var info = await JobWhenAsync(c, j => !j.GetProperty("busy").GetBoolean());
        Assert.True(info.GetProperty("paused").GetBoolean());
        long paused = info.GetProperty("offset").GetInt64();
        await Task.Delay(400);
        Assert.Equal(paused, (await c.ReturnAsync("query-block-jobs"))[0].GetProperty("offset").GetInt64());
        Assert.Equal(("GenericError", "The block job for device 'd0' is currently paused"), await c.ErrorAsync("block-job-cancel", """{"device": "d0"}"""));
        await c.ReturnAsync("block-job-resume", """{"device": "d0"}""");
        Assert.Equal(("GenericError", "Invalid parameter 'speed'"), await c.ErrorAsync("block-job-set-speed", """{"device": "d0", "speed": -1}"""));
        await c.ReturnAsync("block-job-set-speed", """{"device": "d0", "speed": 2097152}""");
        Assert.Equal(2097152, (await c.ReturnAsync("query-block-jobs"))[0].GetProperty("speed").GetInt64());
        await JobWhenAsync(c, j => j.GetProperty("offset").GetInt64() > paused);
        await c.ReturnAsync("block-job-cancel", """{"device": "d0"}""");
        var cancelled = await c.WaitEventAsync("BLOCK_JOB_CANCELLED");
        Assert.Equal("d0", cancelled.GetProperty("data").GetProperty("device").GetString());
        Assert.True(cancelled.GetProperty("data").GetProperty("offset").GetInt64() < Size);
        Assert.Equal(("DeviceNotActive", "No active block job on device 'd0'"), await c.ErrorAsync("block-job-cancel", """{"device": "d0"}"""));
    }

    [Theory]
    [InlineData("""{"device": "nope", "target": "/tmp/x", "sync": "full"}""", "DeviceNotFound", "Device 'nope' not found")]
    [InlineData("""{"device": "d0", "target": "/tmp/x", "sync": "full", "granularity": 1000}""", "GenericError", "Parameter 'granularity' expects power of 2")]
    [InlineData("""{"device": "d0", "target": "/tmp/x", "sync": "full", "granularity": 256}""", "GenericError", "Parameter 'granularity' expects a value in range [512B, 64MB]")]
    [InlineData("""{"device": "d0", "target": "/tmp/x", "sync": "sideways"}""", "GenericError", "Parameter 'sync' does not accept value 'sideways'")]
    [InlineData("""{"device": "d0", "target": "/nonexistent/x.img", "sync": "full", "mode": "existing"}""", "GenericError", "Could not open '/nonexistent/x.img': No such file or directory")]
    [InlineData("""{"device": "d0", "target": "/tmp/x", "sync": "full", "speed": -5}""", "GenericError", "Invalid parameter 'speed'")]
    public async Task Mirror_argument_errors(string args, string cls, string desc)
    {
        var (h, c, _, _) = await StartAsync();
        await using var hh = h;
        await using var cc = c;
        Assert.Equal((cls, desc), await c.ErrorAsync("drive-mirror", args));
        Assert.Equal(("DeviceNotActive", "No active block job on device 'd0'"), await c.ErrorAsync("block-job-pause", """{"device": "d0"}"""));
        Assert.Equal(("DeviceNotFound", "Device 'zz' not found"), await c.ErrorAsync("block-job-resume", """{"device": "zz"}"""));
    }

    [Fact]
    public async Task Target_on_a_full_file_system_stops_the_job_with_an_error_event()
    {
        var (h, c, _, _) = await StartAsync();
        await using var hh = h;
        await using var cc = c;
        using var fs = SmallFileSystem.Mount(1 << 20);
        string target = Path.Combine(fs.Path, "target.img");
        await c.ReturnAsync("drive-mirror", $$$"""{"device": "d0", "target": "{{{target}}}", "sync": "full", "on-target-error": "stop"}""");
        var err = await c.WaitEventAsync("BLOCK_JOB_ERROR");
        Assert.Equal("write", err.GetProperty("data").GetProperty("operation").GetString());
        Assert.Equal("stop", err.GetProperty("data").GetProperty("action").GetString());
        var info = (await c.ReturnAsync("query-block-jobs"))[0];
        Assert.Equal("nospace", info.GetProperty("io-status").GetString());
        Assert.True(info.GetProperty("paused").GetBoolean());
        await c.ReturnAsync("block-job-cancel", """{"device": "d0", "force": true}""");
        await c.WaitEventAsync("BLOCK_JOB_CANCELLED");

        // With the default policy the job ends with the error in its completion event.
        File.Delete(target);
        await c.ReturnAsync("drive-mirror", $$$"""{"device": "d0", "target": "{{{target}}}", "sync": "full"}""");
        var done = await c.WaitEventAsync("BLOCK_JOB_COMPLETED");
        Assert.Contains("No space left on device", done.GetProperty("data").GetProperty("error").GetString(), StringComparison.Ordinal);
    }
}
