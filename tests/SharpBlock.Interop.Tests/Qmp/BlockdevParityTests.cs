using System.Text.Json;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Qmp;

/// <summary>
/// The -blockdev era commands against qemu-storage-daemon 7.2 in the same run: one sequence of blockdev-create
/// (file, qcow2, with its refusals), blockdev-add, blockdev-mirror with job-* control, blockdev-backup,
/// blockdev-reopen, blockdev-del and object-add of the secret of an AES qcow2 image goes to both, and the
/// replies, and the events in the order they came, must be the same up to timestamps. The images we made
/// must then pass qemu-img check, and the mirror's and backup's targets hold the source's bytes.
/// </summary>
public class BlockdevParityTests
{
    private const long Size = 1 << 20;

    private sealed class Run(QmpTestClient c)
    {
        public List<string> Replies { get; } = [];
        public List<string> Events { get; } = [];

        public async Task Do(string command, string args) =>
            Replies.Add(command + " " + QmpCanonical.Of(await c.ExecuteAsync(command, args)));

        /// <summary>Collects events until the job announces the status.</summary>
        public async Task Until(string id, string status)
        {
            while (true)
            {
                JsonElement data = default;
                foreach (var e in await c.EventsUntilAsync("JOB_STATUS_CHANGE"))
                {
                    data = e.GetProperty("data");
                    Events.Add(e.GetProperty("event").GetString() + " " + QmpCanonical.Of(data));
                }

                if (data.GetProperty("id").GetString() == id && data.GetProperty("status").GetString() == status)
                    return;
            }
        }

        /// <summary>blockdev-create of a host file, waited for and dismissed.</summary>
        public async Task CreateFile(string id, string path)
        {
            await Do("blockdev-create", $"{{\"job-id\":\"{id}\",\"options\":{{\"driver\":\"file\",\"filename\":\"{path}\",\"size\":{Size}}}}}");
            await Until(id, "concluded");
            await Do("job-dismiss", $"{{\"id\":\"{id}\"}}");
            await Until(id, "null");
        }
    }

    private static async Task<Run> RunAsync(QmpTestClient c, TempDir dir, string p, string aes)
    {
        var r = new Run(c);
        string img = dir.File(p + "img.qcow2");
        // blockdev-create: a file, then a qcow2 image in it, with the replies and job errors of refusals.
        await r.CreateFile("c0", img);
        await r.Do("query-jobs", "{}");
        await r.Do("blockdev-add", $"{{\"driver\":\"file\",\"node-name\":\"f0\",\"filename\":\"{img}\"}}");
        await r.Do("blockdev-create", $"{{\"job-id\":\"c1\",\"options\":{{\"driver\":\"qcow2\",\"file\":\"f0\",\"size\":{Size},\"cluster-size\":1000}}}}");
        await r.Until("c1", "concluded");
        await r.Do("query-jobs", "{}");
        await r.Do("job-dismiss", "{\"id\":\"c1\"}");
        await r.Until("c1", "null");
        await r.Do("blockdev-create", $"{{\"job-id\":\"c2\",\"options\":{{\"driver\":\"qcow2\",\"file\":\"f0\",\"size\":{Size},\"lazy-refcounts\":true}}}}");
        await r.Until("c2", "concluded");
        await r.Do("query-jobs", "{}");
        await r.Do("job-dismiss", "{\"id\":\"c2\"}");
        await r.Until("c2", "null");
        await r.Do("blockdev-create", "{\"job-id\":\"c3\",\"options\":{\"driver\":\"raw\"}}");
        await r.Do("blockdev-create", "{\"job-id\":\"1c\",\"options\":{\"driver\":\"file\",\"filename\":\"x\",\"size\":0}}");
        await r.Do("blockdev-add", "{\"driver\":\"qcow2\",\"node-name\":\"src\",\"file\":\"f0\"}");

        // blockdev-mirror onto a node added with blockdev-add, with pause, resume and complete.
        await r.CreateFile("c4", dir.File(p + "t0.raw"));
        await r.Do("blockdev-add", $"{{\"driver\":\"raw\",\"node-name\":\"tgt\",\"file\":{{\"driver\":\"file\",\"node-name\":\"tgtf\",\"filename\":\"{dir.File(p + "t0.raw")}\"}}}}");
        await r.Do("blockdev-mirror", "{\"device\":\"src\",\"target\":\"tgt\",\"sync\":\"full\"}");
        await r.Do("blockdev-mirror", "{\"job-id\":\"m0\",\"device\":\"src\",\"target\":\"src\",\"sync\":\"full\"}");
        await r.Do("blockdev-mirror", "{\"job-id\":\"m0\",\"device\":\"nope\",\"target\":\"tgt\",\"sync\":\"full\"}");
        await r.Do("blockdev-mirror", "{\"job-id\":\"m0\",\"device\":\"f0\",\"target\":\"tgt\",\"sync\":\"full\"}");
        await r.Do("blockdev-mirror", "{\"job-id\":\"m0\",\"device\":\"src\",\"target\":\"tgt\",\"sync\":\"full\",\"auto-dismiss\":false}");
        await r.Until("m0", "ready");
        await r.Do("blockdev-del", "{\"node-name\":\"tgt\"}");
        await r.Do("blockdev-del", "{\"node-name\":\"src\"}");
        await r.Do("query-jobs", "{}");
        await r.Do("job-pause", "{\"id\":\"m0\"}");
        await r.Until("m0", "standby");
        await r.Do("job-resume", "{\"id\":\"m0\"}");
        await r.Until("m0", "ready");
        await r.Do("job-complete", "{\"id\":\"m0\"}");
        await r.Until("m0", "concluded");
        await r.Do("query-jobs", "{}");
        await r.Do("job-dismiss", "{\"id\":\"m0\"}");
        await r.Until("m0", "null");

        // A second mirror, cancelled once ready: 7.2 abandons it (BLOCK_JOB_CANCELLED).
        await r.CreateFile("c5", dir.File(p + "t1.raw"));
        await r.Do("blockdev-add", $"{{\"driver\":\"raw\",\"node-name\":\"tgt1\",\"file\":{{\"driver\":\"file\",\"filename\":\"{dir.File(p + "t1.raw")}\"}}}}");
        await r.Do("blockdev-mirror", "{\"job-id\":\"m1\",\"device\":\"src\",\"target\":\"tgt1\",\"sync\":\"full\"}");
        await r.Until("m1", "ready");
        await r.Do("job-cancel", "{\"id\":\"m1\"}");
        await r.Until("m1", "null");

        // blockdev-backup onto another added node.
        await r.CreateFile("c6", dir.File(p + "b0.raw"));
        await r.Do("blockdev-add", $"{{\"driver\":\"raw\",\"node-name\":\"bk\",\"file\":{{\"driver\":\"file\",\"filename\":\"{dir.File(p + "b0.raw")}\"}}}}");
        await r.Do("blockdev-backup", "{\"job-id\":\"b0\",\"device\":\"src\",\"target\":\"bk\",\"sync\":\"full\",\"auto-finalize\":false}");
        await r.Until("b0", "pending");
        await r.Do("job-finalize", "{\"id\":\"b0\"}");
        await r.Until("b0", "null");

        // blockdev-reopen: read-only and back, and what it refuses.
        await r.Do("blockdev-reopen", "{\"options\":[{\"driver\":\"qcow2\",\"node-name\":\"src\",\"file\":\"f0\",\"read-only\":true}]}");
        await r.Do("blockdev-reopen", "{\"options\":[{\"driver\":\"qcow2\",\"node-name\":\"src\",\"file\":\"f0\"}]}");
        string f0 = $"{{\"driver\":\"file\",\"node-name\":\"f0\",\"filename\":\"{img}\"";
        await r.Do("blockdev-reopen", $"{{\"options\":[{f0},\"read-only\":true}},{{\"driver\":\"qcow2\",\"node-name\":\"src\",\"file\":\"f0\",\"read-only\":true}}]}}");
        await r.Do("blockdev-reopen", "{\"options\":[{\"driver\":\"qcow2\",\"node-name\":\"src\",\"file\":\"f0\"}]}");
        await r.Do("blockdev-reopen", $"{{\"options\":[{{\"driver\":\"qcow2\",\"node-name\":\"src\",\"file\":\"f0\"}},{f0}}}]}}");
        await r.Do("blockdev-reopen", "{\"options\":[{\"driver\":\"file\",\"node-name\":\"f0\",\"filename\":\"/elsewhere\"}]}");
        await r.Do("blockdev-reopen", "{\"options\":[{\"driver\":\"raw\",\"node-name\":\"src\",\"file\":\"f0\"}]}");
        await r.Do("blockdev-reopen", "{\"options\":[{\"driver\":\"qcow2\",\"file\":\"f0\"}]}");
        await r.Do("blockdev-reopen", "{\"options\":[{\"driver\":\"qcow2\",\"node-name\":\"nope\",\"file\":\"f0\"}]}");
        await r.Do("blockdev-reopen", "{\"options\":[{\"driver\":\"qcow2\",\"node-name\":\"src\",\"file\":\"nope\"}]}");

        // blockdev-del as 7.2 answers it.
        await r.Do("blockdev-del", "{\"node-name\":\"f0\"}");
        await r.Do("blockdev-del", "{\"node-name\":\"tgtf\"}");
        await r.Do("blockdev-del", "{\"node-name\":\"nope\"}");
        foreach (string n in (string[])["src", "f0", "tgt", "tgt1", "bk"])
            await r.Do("blockdev-del", $"{{\"node-name\":\"{n}\"}}");

        // A secret by object-add feeds an AES image's encrypt.key-secret.
        await r.Do("object-add", "{\"qom-type\":\"secret\",\"id\":\"key0\",\"data\":\"cGFzcw==\",\"format\":\"base64\"}");
        await r.Do("object-add", "{\"qom-type\":\"secret\",\"id\":\"key0\",\"data\":\"x\"}");
        await r.Do("object-add", "{\"qom-type\":\"nope\",\"id\":\"k1\"}");
        await r.Do("blockdev-add", $"{{\"driver\":\"qcow2\",\"node-name\":\"enc\",\"file\":{{\"driver\":\"file\",\"filename\":\"{aes}\"}},\"encrypt\":{{\"format\":\"aes\",\"key-secret\":\"key0\"}}}}");
        await r.Do("object-del", "{\"id\":\"key0\"}");
        await r.Do("object-del", "{\"id\":\"key0\"}");
        await r.Do("blockdev-del", "{\"node-name\":\"enc\"}");
        return r;
    }

    [Fact]
    public async Task Blockdev_commands_answer_and_announce_as_qemu_storage_daemon()
    {
        using var dir = new TempDir();
        string aes = dir.File("aes.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", "--object", "secret,id=k,data=pass",
            "-o", "encrypt.format=aes,encrypt.key-secret=k", aes, "1M")).Ok();

        Run theirs;
        await using (var qsd = await QemuStorageDaemon.StartAsync(dir.File("qsd.sock")))
            theirs = await RunAsync(qsd.Client, dir, "q-", aes);
        Run ours;
        var d = await QmpHarness.StartAsync();
        try
        {
            ours = await RunAsync(d.Client, dir, "s-", aes);
        }
        finally
        {
            // Closed before the checks, so the images are flushed and unlocked.
            await d.DisposeAsync();
        }

        Assert.Equal(theirs.Replies, ours.Replies);
        // The one known difference: 7.2 drains the source while it puts its copy-before-write filter node in,
        // which pauses the backup job it has just started; ours hooks the source's writes and has no filter.
        var expected = theirs.Events.ToList();
        int at = expected.IndexOf("JOB_STATUS_CHANGE {\"id\":\"b0\",\"status\":\"running\"}");
        Assert.Equal(["JOB_STATUS_CHANGE {\"id\":\"b0\",\"status\":\"paused\"}", "JOB_STATUS_CHANGE {\"id\":\"b0\",\"status\":\"running\"}"],
            expected.GetRange(at + 1, 2));
        expected.RemoveRange(at + 1, 2);
        Assert.Equal(expected, ours.Events);

        // What we made is what qemu-img accepts, and the copies hold the source's bytes.
        (await Tools.RunAsync("qemu-img", "check", "-f", "qcow2", dir.File("s-img.qcow2"))).Ok();
        foreach (string copy in (string[])["s-t0.raw", "s-b0.raw"])
            (await Tools.RunAsync("qemu-img", "compare", "-f", "qcow2", "-F", "raw", dir.File("s-img.qcow2"), dir.File(copy))).Ok();
    }
}
