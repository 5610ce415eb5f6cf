using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Qmp;

/// <summary>
/// blockdev-create of every format that has a creator, over a host file node, with 7.2's option names: the
/// job concludes without an error and qemu-img reads the image as that format and size (and checks it
/// where qemu-img can check the format).
/// </summary>
public class BlockdevCreateFormatsTests
{
    [Theory]
    [InlineData("qcow2", ",\"version\":\"v2\",\"cluster-size\":4096", true)]
    [InlineData("qcow2", ",\"lazy-refcounts\":true,\"refcount-bits\":8", true)]
    [InlineData("qed", ",\"cluster-size\":65536", true)]
    [InlineData("qcow", "", false)]
    [InlineData("vmdk", ",\"subformat\":\"monolithicSparse\",\"adapter-type\":\"lsilogic\"", true)]
    [InlineData("vhdx", ",\"subformat\":\"dynamic\",\"block-size\":8388608", true)]
    [InlineData("vdi", ",\"preallocation\":\"metadata\"", true)]
    [InlineData("vpc", ",\"subformat\":\"dynamic\",\"force-size\":true", false)]
    [InlineData("parallels", ",\"cluster-size\":65536", true)]
    public async Task The_image_is_one_qemu_img_reads(string format, string extra, bool checkable)
    {
        await using var d = await QmpHarness.StartAsync();
        string path = d.Dir.File("new." + format);
        var c = d.Client;
        await c.ReturnAsync("blockdev-create", $"{{\"job-id\":\"f\",\"options\":{{\"driver\":\"file\",\"filename\":\"{path}\",\"size\":0}}}}");
        await WaitConcludedAsync(c, "f");
        await c.ReturnAsync("blockdev-add", $"{{\"driver\":\"file\",\"node-name\":\"n\",\"filename\":\"{path}\"}}");
        await c.ReturnAsync("blockdev-create", $"{{\"job-id\":\"i\",\"options\":{{\"driver\":\"{format}\",\"file\":\"n\",\"size\":4194304{extra}}}}}");
        await WaitConcludedAsync(c, "i");
        var jobs = await c.ReturnAsync("query-jobs");
        foreach (var j in jobs.EnumerateArray())
            Assert.False(j.TryGetProperty("error", out var e), e.ToString());
        // The file node learnt the image's size, and a format node opens over it.
        await c.ReturnAsync("blockdev-add", $"{{\"driver\":\"{format}\",\"node-name\":\"img\",\"file\":\"n\"}}");
        await c.ReturnAsync("blockdev-del", "{\"node-name\":\"img\"}");
        await c.ReturnAsync("blockdev-del", "{\"node-name\":\"n\"}");

        var info = await Tools.RunAsync("qemu-img", "info", "--output=json", "-f", format, path);
        info.Ok();
        Assert.Contains($"\"format\": \"{format}\"", info.Stdout, StringComparison.Ordinal);
        Assert.Contains("\"virtual-size\": 4194304", info.Stdout, StringComparison.Ordinal);
        if (checkable)
            (await Tools.RunAsync("qemu-img", "check", "-f", format, path)).Ok();
    }

    private static async Task WaitConcludedAsync(QmpTestClient c, string id)
    {
        while (true)
        {
            var e = await c.WaitEventAsync("JOB_STATUS_CHANGE");
            var data = e.GetProperty("data");
            if (data.GetProperty("id").GetString() == id && data.GetProperty("status").GetString() == "concluded")
                return;
        }
    }
}
