using SharpBlock.Drivers.Format.Qcow2;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Qcow2;

/// <summary>
/// The qcow2 cache options of newer QEMU on blockdev-add: a tiny cache still reads and writes a large image
/// right (every table is evicted and reloaded many times), and bad combinations fail with
/// qemu-storage-daemon 7.2's words.
/// </summary>
public class Qcow2CacheOptionsTests
{
    private static string Qcow2Options(string id, string path, string extra) =>
        "{\"options\":{\"driver\":\"qcow2\",\"id\":\"" + id + "\"" + extra + ",\"file\":{\"driver\":\"file\",\"filename\":\"" + path + "\"}}}";

    [Fact]
    public async Task A_tiny_l2_and_refcount_cache_still_reads_and_writes_a_large_image_right()
    {
        using var keep = new TempDir();
        // 512-byte clusters: one L2 table maps 32 KiB, so 4 MiB of data goes through 128 tables.
        string img = keep.File("big.qcow2"), pattern = keep.PatternFile("pattern.raw", 4 << 20), back = keep.File("back.raw");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=512", img, "4M")).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "qcow2", "-c", "write -P 0x77 1M 64k", img)).Ok();
        var d = await QmpHarness.StartAsync();
        try
        {
            await d.Client.ReturnAsync("blockdev-add", Qcow2Options("d0", img, ",\"l2-cache-size\":1024,\"refcount-cache-size\":512,\"cache-clean-interval\":0"));
            var node = Assert.IsType<Qcow2Node>(d.Graph.FindDevice("d0")!.Root);
            Assert.Equal((4, 4), node.CacheCapacity);
            await d.StartNbdAsync();
            await d.ExportAsync("d0", writable: true);
            (await Tools.RunAsync("nbdcopy", pattern, d.Url("d0"))).Ok();
            (await Tools.RunAsync("nbdcopy", d.Url("d0"), back)).Ok();
            Assert.True(File.ReadAllBytes(pattern).AsSpan().SequenceEqual(File.ReadAllBytes(back)), "what was written reads back");
        }
        finally
        {
            // Closing the daemon flushes and closes the image before qemu-img looks at it.
            await d.DisposeAsync();
        }

        (await Tools.RunAsync("qemu-img", "check", img)).Ok();
        (await Tools.RunAsync("qemu-img", "compare", "-F", "raw", img, pattern)).Ok();
    }

    [Fact]
    public async Task Cache_size_alone_is_split_and_defaults_follow_qemu()
    {
        var (l2, refcount) = Qcow2Node.ComputeCacheSizes(new Qcow2CacheOptions(null, null, null, null, null), 65536, 1L << 30);
        Assert.Equal(128L * 1024, l2); // 1 GiB needs 16384 entries of 8 bytes
        Assert.Equal(4L * 65536, refcount);
        (l2, refcount) = Qcow2Node.ComputeCacheSizes(new Qcow2CacheOptions(1 << 20, null, null, null, null), 65536, 1L << 30);
        Assert.Equal(128L * 1024, l2);
        Assert.Equal((1L << 20) - (128 * 1024), refcount);
        (l2, refcount) = Qcow2Node.ComputeCacheSizes(new Qcow2CacheOptions(1 << 20, null, null, null, null), 65536, 1L << 40);
        Assert.Equal((1L << 20) - (4 * 65536), l2);
        Assert.Equal(4L * 65536, refcount);
        (l2, refcount) = Qcow2Node.ComputeCacheSizes(new Qcow2CacheOptions(1 << 20, 1 << 19, null, null, null), 65536, 1L << 40);
        Assert.Equal(1L << 19, l2);
        Assert.Equal(1L << 19, refcount);
        await Task.CompletedTask;
    }

    [Theory]
    [InlineData("l2-cache-size=1048576,refcount-cache-size=1048576,cache-size=1048576", ",\"l2-cache-size\":1048576,\"refcount-cache-size\":1048576,\"cache-size\":1048576")]
    [InlineData("cache-size=1048576,l2-cache-size=2097152", ",\"cache-size\":1048576,\"l2-cache-size\":2097152")]
    [InlineData("cache-size=1048576,refcount-cache-size=2097152", ",\"cache-size\":1048576,\"refcount-cache-size\":2097152")]
    [InlineData("l2-cache-entry-size=1000", ",\"l2-cache-entry-size\":1000")]
    [InlineData("l2-cache-entry-size=131072", ",\"l2-cache-entry-size\":131072")]
    [InlineData("cache-clean-interval=4294967296", ",\"cache-clean-interval\":4294967296")]
    public async Task Bad_combinations_are_refused_with_the_words_of_qemu_storage_daemon(string qsdOptions, string json)
    {
        await using var d = await QmpHarness.StartAsync();
        string img = d.Dir.File("x.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", img, "64M")).Ok();
        string prefix = $"--blockdev driver=qcow2,file=f,node-name=q,{qsdOptions}: ";
        var qsd = await Tools.RunAsync("qemu-storage-daemon", ["--blockdev", $"driver=file,filename={img},node-name=f", "--blockdev", $"driver=qcow2,file=f,node-name=q,{qsdOptions}"], timeoutMs: 20_000);
        Assert.NotEqual(0, qsd.ExitCode);
        int at = qsd.Stderr.IndexOf(prefix, StringComparison.Ordinal);
        Assert.True(at >= 0, qsd.Stderr);
        string expected = qsd.Stderr[(at + prefix.Length)..].Trim();

        var (cls, desc) = await d.Client.ErrorAsync("blockdev-add", Qcow2Options("d0", img, json));
        Assert.Equal("GenericError", cls);
        Assert.Equal(expected, desc);
        Assert.Null(d.Graph.FindDevice("d0"));
    }
}
