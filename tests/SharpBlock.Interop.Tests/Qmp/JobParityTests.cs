using System.Text.Json;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Qmp;

/// <summary>
/// The job model of QEMU 7.2 against qemu-storage-daemon 7.2 in the same run: one sequence of drive-mirror,
/// job-* and query-jobs commands goes to both, and the replies, and the events in the order they came
/// (JOB_STATUS_CHANGE, BLOCK_JOB_READY/PENDING/COMPLETED), must be the same up to timestamps.
/// </summary>
public class JobParityTests
{
    private static string Mirror(string id, string target, string extra = "") =>
        $"{{\"job-id\":\"{id}\",\"device\":\"disk0\",\"target\":\"{target}\",\"format\":\"raw\",\"sync\":\"full\"{extra}}}";

    /// <summary>Runs the sequence; returns its replies and its events (names and data, no timestamps).</summary>
    private static async Task<(List<string> Replies, List<string> Events)> RunAsync(QmpTestClient c, TempDir dir, string prefix)
    {
        var replies = new List<string>();
        var events = new List<string>();
        async Task Do(string command, string? args = null) => replies.Add(command + " " + Canonical(await c.ExecuteAsync(command, args)));
        async Task Until(string ev)
        {
            foreach (var e in await c.EventsUntilAsync(ev))
                events.Add(e.GetProperty("event").GetString() + " " + Canonical(e.GetProperty("data")));
        }

        await Do("drive-mirror", Mirror("j0", dir.File(prefix + "t0.raw")));
        await Until("BLOCK_JOB_READY");
        await Do("query-jobs");
        await Do("job-finalize", "{\"id\":\"j0\"}");
        await Do("job-dismiss", "{\"id\":\"j0\"}");
        await Do("job-complete", "{\"id\":\"j0\"}");
        await Until("BLOCK_JOB_COMPLETED");
        await Until("JOB_STATUS_CHANGE");
        await Until("JOB_STATUS_CHANGE");
        await Do("query-jobs");

        await Do("drive-mirror", Mirror("j1", dir.File(prefix + "t1.raw"), ",\"auto-finalize\":false,\"auto-dismiss\":false"));
        await Until("BLOCK_JOB_READY");
        await Do("job-complete", "{\"id\":\"j1\"}");
        await Until("BLOCK_JOB_PENDING");
        await Do("query-jobs");
        await Do("job-dismiss", "{\"id\":\"j1\"}");
        await Do("job-finalize", "{\"id\":\"j1\"}");
        await Until("BLOCK_JOB_COMPLETED");
        await Until("JOB_STATUS_CHANGE");
        await Do("query-jobs");
        await Do("job-dismiss", "{\"id\":\"j1\"}");
        await Until("JOB_STATUS_CHANGE");
        await Do("query-jobs");
        await Do("job-dismiss", "{\"id\":\"j1\"}");
        await Do("job-pause", "{\"id\":\"nope\"}");
        await Do("drive-mirror", Mirror("1bad", dir.File(prefix + "t2.raw")));
        return (replies, events);
    }

    /// <summary>A JSON value with object members sorted, so member order (QEMU's is a hash order) does not count.</summary>
    internal static string Canonical(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => "{" + string.Join(",", e.EnumerateObject().Where(p => p.Name != "timestamp")
            .OrderBy(p => p.Name, StringComparer.Ordinal).Select(p => JsonSerializer.Serialize(p.Name) + ":" + Canonical(p.Value))) + "}",
        JsonValueKind.Array => "[" + string.Join(",", e.EnumerateArray().Select(Canonical)) + "]",
        _ => e.GetRawText(),
    };

    [Fact]
    public async Task Mirror_jobs_with_job_commands_answer_and_announce_as_qemu_storage_daemon()
    {
        using var dir = new TempDir();
        string img = dir.File("a.raw");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "raw", img, "1M")).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 0x5c 0 64k", img)).Ok();

        List<string> theirReplies, theirEvents;
        await using (var qsd = await QemuStorageDaemon.StartAsync(dir.File("qsd.sock"),
            "--blockdev", $"driver=file,filename={img},node-name=f0", "--blockdev", "driver=raw,file=f0,node-name=disk0"))
        {
            (theirReplies, theirEvents) = await RunAsync(qsd.Client, dir, "q-");
        }

        await using var d = await QmpHarness.StartAsync();
        await d.AddRawAsync("disk0", img);
        var (ourReplies, ourEvents) = await RunAsync(d.Client, dir, "s-");

        Assert.Equal(theirReplies, ourReplies);
        Assert.Equal(theirEvents, ourEvents);
        // The mirror really copied: the finished target holds the source's bytes.
        (await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "raw", img, dir.File("s-t1.raw"))).Ok();
    }
}
