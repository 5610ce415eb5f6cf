using System.Text.Json;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Bitmaps;

/// <summary>
/// transaction against qemu-storage-daemon 7.2 in the same run: the same nodes and the same transactions (empty,
/// aborted, malformed, bitmaps that see each other's changes, a failure that must undo what came before it,
/// backups started beside a bitmap, grouped backups where one fails) must give the same replies, the same
/// bitmaps afterwards, and the same job events.
/// </summary>
public class TransactionParityTests
{
    private static string Txn(params string[] actions) => "transaction {\"actions\":[" + string.Join(",", actions) + "]}";

    private static string Grouped(string properties, params string[] actions) =>
        "transaction {\"actions\":[" + string.Join(",", actions) + "],\"properties\":" + properties + "}";

    private static string Act(string type, string data) => "{\"type\":\"" + type + "\",\"data\":" + data + "}";

    private static readonly string[] Before =
    [
        Txn(),
        Txn(Act("abort", "{}")),
        Txn(Act("block-dirty-bitmap-add", """{"node":"q0","name":"a"}"""), Act("abort", "{}")),
        Txn(Act("nosuch", "{}")),
        "transaction {\"actions\":[{\"type\":\"block-dirty-bitmap-add\"}]}",
        Txn(Act("block-dirty-bitmap-add", """{"node":"q0"}""")),
        Txn(Act("block-dirty-bitmap-add", """{"node":"q0","name":"a","bogus":1}""")),
        "transaction {}",
        "transaction {\"actions\":{}}",
        Txn(Act("block-dirty-bitmap-add", """{"node":"q0","name":"b"}"""),
            Act("block-dirty-bitmap-add", """{"node":"q0","name":"c","disabled":true}"""),
            Act("block-dirty-bitmap-merge", """{"node":"q0","target":"c","bitmaps":["b"]}"""),
            Act("block-dirty-bitmap-disable", """{"node":"q0","name":"b"}"""),
            Act("block-dirty-bitmap-enable", """{"node":"q0","name":"b"}""")),
        // The second add fails: the first is undone.
        Txn(Act("block-dirty-bitmap-add", """{"node":"q0","name":"d"}"""),
            Act("block-dirty-bitmap-add", """{"node":"q0","name":"b"}""")),
        Txn(Act("block-dirty-bitmap-disable", """{"node":"q0","name":"b"}"""),
            Act("block-dirty-bitmap-remove", """{"node":"q0","name":"c"}"""),
            Act("abort", "{}")),
        Txn(Act("block-dirty-bitmap-clear", """{"node":"q0","name":"zz"}""")),
        Txn(Act("block-dirty-bitmap-remove", """{"node":"q0","name":"c"}"""),
            Act("block-dirty-bitmap-remove", """{"node":"q0","name":"c"}""")),
        Grouped("""{"completion-mode":"grouped"}""", Act("block-dirty-bitmap-add", """{"node":"q0","name":"g"}""")),
        Grouped("""{"completion-mode":"bogus"}""", Act("abort", "{}")),
        Grouped("""{"bogus":1}""", Act("abort", "{}")),
        // A backup whose target does not exist, after a bitmap: neither stays.
        Txn(Act("block-dirty-bitmap-add", """{"node":"q0","name":"e"}"""),
            Act("blockdev-backup", """{"job-id":"jx","device":"q0","target":"nope","sync":"full"}""")),
        Txn(Act("blockdev-backup", """{"job-id":"jx","device":"q0","target":"q0","sync":"full"}""")),
        Txn(Act("blockdev-backup", """{"job-id":"jx","device":"q0","target":"t0","sync":"incremental"}""")),
        // A backup that got through its checks, then an abort: its job never runs.
        Txn(Act("blockdev-backup", """{"job-id":"jy","device":"q0","target":"t0","sync":"full"}"""), Act("abort", "{}")),
        "query-jobs",
    ];

    private static async Task<List<string>> RunAsync(QmpTestClient c, TempDir dir, string prefix)
    {
        var log = new List<string>();
        await RunIntoAsync(c, dir, prefix, log);
        return log;
    }

    private static async Task RunIntoAsync(QmpTestClient c, TempDir dir, string prefix, List<string> log)
    {
        async Task Do(string line) => log.Add(await QmpTranscript.RunAsync(c, line));
        async Task Events(params string[] ends)
        {
            // Waits for each named event, in whatever order they come (two jobs end in either order); what
            // matters is how each job ended.
            var left = new List<string>(ends);
            var seen = new List<string>();
            while (left.Count > 0)
            {
                var e = await c.WaitEventAnyAsync(left);
                string name = e.GetProperty("event").GetString()!;
                left.Remove(name);
                var data = e.GetProperty("data");
                seen.Add(name + " " + data.GetProperty("device").GetString()
                    + (data.TryGetProperty("error", out var err) ? " error=" + err.GetString() : ""));
            }

            seen.Sort(StringComparer.Ordinal);
            log.AddRange(seen);
        }

        foreach (var (name, file) in new[] { ("q0", "a.qcow2"), ("t0", "t0.qcow2"), ("t1", "t1.qcow2"), ("r0", "r.qcow2") })
        {
            await c.ReturnAsync("blockdev-add", $"{{\"driver\":\"file\",\"node-name\":\"{name}-f\",\"filename\":{JsonSerializer.Serialize(dir.File(prefix + file))}}}");
            await c.ReturnAsync("blockdev-add", $"{{\"driver\":\"qcow2\",\"node-name\":\"{name}\",\"file\":\"{name}-f\"}}");
        }

        // t2 refuses every data write, so a backup into it fails at its first cluster.
        await c.ReturnAsync("blockdev-add", $$$"""
            {"driver":"qcow2","node-name":"t2","file":{"driver":"blkdebug","image":{"driver":"file","filename":{{{JsonSerializer.Serialize(dir.File(prefix + "t2.qcow2"))}}}},
             "inject-error":[{"event":"write_aio","errno":5}]}}
            """);

        foreach (string line in Before)
            await Do(line);
        log.Add(await QmpTranscript.BitmapsAsync(c));

        // A full backup and the bitmap beside it, at one instant.
        await Do(Txn(Act("block-dirty-bitmap-add", """{"node":"q0","name":"inc","granularity":65536}"""),
            Act("blockdev-backup", """{"job-id":"j0","device":"q0","target":"t0","sync":"full"}""")));
        await Events("BLOCK_JOB_COMPLETED");
        log.Add(await QmpTranscript.BitmapsAsync(c));
        // An incremental from that bitmap, beside a fresh one.
        await Do(Txn(Act("blockdev-backup", """{"job-id":"j1","device":"q0","target":"t1","sync":"incremental","bitmap":"inc"}"""),
            Act("block-dirty-bitmap-add", """{"node":"q0","name":"inc2"}""")));
        await Events("BLOCK_JOB_COMPLETED");

        // Grouped: j3 fails at once, and j2 (held to a slow pace) is cancelled for it.
        await Do(Grouped("""{"completion-mode":"grouped"}""",
            Act("blockdev-backup", """{"job-id":"j2","device":"q0","target":"t1","sync":"full","speed":65536}"""),
            Act("blockdev-backup", """{"job-id":"j3","device":"r0","target":"t2","sync":"full"}""")));
        await Events("BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED");
        await Do("query-jobs");
        log.Add(await QmpTranscript.BitmapsAsync(c));
    }

    private static async Task MakeImagesAsync(TempDir dir, string prefix)
    {
        foreach (string f in new[] { "a.qcow2", "t0.qcow2", "t1.qcow2", "t2.qcow2", "r.qcow2" })
            (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", dir.File(prefix + f), "8M")).Ok();
        (await Tools.RunAsync("qemu-io", "-c", "write -P 0x41 0 3M", "-c", "write -P 0x42 5M 64k", dir.File(prefix + "a.qcow2"))).Ok();
        (await Tools.RunAsync("qemu-io", "-c", "write -P 0x43 0 1M", dir.File(prefix + "r.qcow2"))).Ok();
    }

    [Fact]
    public async Task Transactions_answer_undo_and_group_their_jobs_as_qemu_storage_daemon()
    {
        using var dir = new TempDir();
        await MakeImagesAsync(dir, "q-");
        await MakeImagesAsync(dir, "s-");
        List<string> theirs;
        await using (var qsd = await QemuStorageDaemon.StartAsync(dir.File("qsd.sock")))
            theirs = await RunAsync(qsd.Client, dir, "q-");

        await using var d = await QmpHarness.StartAsync();
        var ours = await RunAsync(d.Client, dir, "s-");
        Assert.Equal(string.Join("\n", theirs), string.Join("\n", ours));

        // The full backup begun in a transaction really copied: it holds the source (unchanged since), in both runs.
        foreach (string p in new[] { "q-", "s-" })
        {
            var same = await Tools.RunAsync("qemu-img", "compare", "-U", "-f", "qcow2", "-F", "qcow2", dir.File(p + "a.qcow2"), dir.File(p + "t0.qcow2"));
            Assert.Equal("Images are identical.", same.Ok().Stdout.Trim());
        }
    }
}
