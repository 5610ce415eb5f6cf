using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Jobs;

/// <summary>Every on-source-error policy of a job, with read errors injected by blkdebug under the device.</summary>
public class JobErrorPolicyTests
{
    private const int Size = 1 << 20;

    private static async Task<(QmpServerHarness H, QmpTestClient C, string Source)> StartAsync(int errno)
    {
        var h = QmpServerHarness.Start();
        string source = h.Dir.PatternFile("source.img", Size, seed: 21);
        var c = await h.ConnectAsync();
        // The device reads through blkdebug: the first read of the job fails once with the given errno.
        await c.ReturnAsync("blockdev-add", "{\"driver\": \"blkdebug\", \"id\": \"d0\", \"image\": {\"driver\": \"file\", \"filename\": \"" + source
            + "\"}, \"inject-error\": [{\"event\": \"read_aio\", \"errno\": " + errno + ", \"once\": true}]}");
        return (h, c, source);
    }

    private static string Mirror(QmpServerHarness h, string policy) =>
        "{\"device\": \"d0\", \"target\": \"" + h.Dir.File("target.img") + "\", \"format\": \"raw\", \"sync\": \"full\", \"on-source-error\": \"" + policy + "\"}";

    [Fact]
    public async Task Report_ends_the_job_with_the_error()
    {
        var (h, c, _) = await StartAsync(5);
        await using var hh = h;
        await using var cc = c;
        await c.ReturnAsync("drive-mirror", Mirror(h, "report"));
        var err = await c.WaitEventAsync("BLOCK_JOB_ERROR");
        Assert.Equal("read", err.GetProperty("data").GetProperty("operation").GetString());
        Assert.Equal("report", err.GetProperty("data").GetProperty("action").GetString());
        var done = await c.WaitEventAsync("BLOCK_JOB_COMPLETED");
        Assert.Contains("Input/output error", done.GetProperty("data").GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Ignore_goes_on_and_the_chunk_is_copied_again_later()
    {
        var (h, c, source) = await StartAsync(5);
        await using var hh = h;
        await using var cc = c;
        await c.ReturnAsync("drive-mirror", Mirror(h, "ignore"));
        var err = await c.WaitEventAsync("BLOCK_JOB_ERROR");
        Assert.Equal("ignore", err.GetProperty("data").GetProperty("action").GetString());
        await c.WaitEventAsync("BLOCK_JOB_READY");
        await c.ReturnAsync("block-job-cancel", """{"device": "d0"}""");
        await c.WaitEventAsync("BLOCK_JOB_COMPLETED");
        await Tools.AssertRawImageEqualsAsync(h.Dir.File("target.img"), File.ReadAllBytes(source), h.Dir.Path);
    }

    [Theory]
    [InlineData("stop", 5, "failed")]
    [InlineData("enospc", 28, "nospace")]
    public async Task Stop_pauses_the_job_until_resume(string policy, int errno, string ioStatus)
    {
        var (h, c, source) = await StartAsync(errno);
        await using var hh = h;
        await using var cc = c;
        await c.ReturnAsync("drive-mirror", Mirror(h, policy));
        var err = await c.WaitEventAsync("BLOCK_JOB_ERROR");
        Assert.Equal("stop", err.GetProperty("data").GetProperty("action").GetString());
        var info = (await c.ReturnAsync("query-block-jobs"))[0];
        Assert.Equal(ioStatus, info.GetProperty("io-status").GetString());
        Assert.True(info.GetProperty("paused").GetBoolean());
        await c.ReturnAsync("block-job-resume", """{"device": "d0"}""");
        await c.WaitEventAsync("BLOCK_JOB_READY");
        Assert.Equal("ok", (await c.ReturnAsync("query-block-jobs"))[0].GetProperty("io-status").GetString());
        await c.ReturnAsync("block-job-cancel", """{"device": "d0"}""");
        await c.WaitEventAsync("BLOCK_JOB_COMPLETED");
        await Tools.AssertRawImageEqualsAsync(h.Dir.File("target.img"), File.ReadAllBytes(source), h.Dir.Path);
    }

    [Fact]
    public async Task Enospc_reports_errors_other_than_no_space()
    {
        var (h, c, _) = await StartAsync(5);
        await using var hh = h;
        await using var cc = c;
        await c.ReturnAsync("drive-mirror", Mirror(h, "enospc"));
        var err = await c.WaitEventAsync("BLOCK_JOB_ERROR");
        Assert.Equal("report", err.GetProperty("data").GetProperty("action").GetString());
        await c.WaitEventAsync("BLOCK_JOB_COMPLETED");
    }
}
