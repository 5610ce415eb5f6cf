using SharpBlock.Drivers;
using SharpBlock.Drivers.Format.Qcow2;
using SharpBlock.Graph;
using SharpBlock.Io;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Qcow2;

/// <summary>
/// Interleavings found risky in review of the allocating write path and lazy refcounts, judged by qemu-img.
/// </summary>
public class Qcow2ReviewTests
{
    private static async Task<(BlockGraph Graph, BlockNode Node)> OpenAsync(string path, bool readOnly, long? l2CacheSize = null)
    {
        var g = new BlockGraph();
        var o = ImageFormats.ImageOptions(path, "qcow2", readOnly, "n0");
        o.Discard = SharpBlock.Schema.BlockdevDiscardOptions.Unmap;
        if (l2CacheSize is { } l2)
        {
            o.Qcow2!.L2CacheSize = l2;
            o.Qcow2.RefcountCacheSize = 4096;
        }

        return (g, await g.AddAsync(o));
    }

    /// <summary>
    /// A lazy-refcounts image left dirty by a killed writer, opened read-only and then reopened read-write (as
    /// commit does with a backing image), must have its refcounts rebuilt before anything allocates; else the
    /// allocator hands out clusters the tables still use.
    /// </summary>
    [Fact]
    public async Task Reopening_a_dirty_lazy_image_read_write_repairs_it_before_allocating()
    {
        using var dir = new TempDir();
        string img = dir.File("dirty.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=65536,lazy_refcounts=on", img, "8M")).Ok();
        var killed = await Tools.RunAsync("qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 64k", "-c", "sigraise 9", img);
        Assert.NotEqual(0, killed.ExitCode);
        Assert.Contains("\"dirty-flag\": true", (await Tools.RunAsync("qemu-img", "info", "--output=json", img)).Ok().Stdout, StringComparison.Ordinal);

        var (g, node) = await OpenAsync(img, readOnly: true);
        try
        {
            await node.ReopenAsync(false);
            byte[] d = new byte[65536 * 3];
            Array.Fill(d, (byte)0xa5);
            await node.WriteAsync(1 << 20, d);
            await node.FlushAsync();
        }
        finally
        {
            await g.DisposeAsync();
        }

        var check = await Tools.RunAsync("qemu-img", "check", img);
        Assert.True(check.ExitCode == 0, check.Stdout + check.Stderr);
        var read = await Tools.RunAsync("qemu-io", "-r", "-f", "qcow2", "-c", "read -P 0x5a 0 64k", "-c", "read -P 0xa5 1M 192k", img);
        Assert.DoesNotContain("Pattern verification failed", read.Stdout + read.Stderr, StringComparison.Ordinal);
    }

    /// <summary>
    /// Autoclear bits we do not maintain must be dropped before our first write, also when the write comes after
    /// a reopen from read-only; else a newer qemu would trust a feature that misses our writes. The bitmaps bit
    /// is one we maintain: it stays, and the persistent bitmap is stored back consistent, holding our write.
    /// </summary>
    [Fact]
    public async Task Reopening_read_write_clears_the_autoclear_bits_we_do_not_maintain()
    {
        using var dir = new TempDir();
        string img = dir.File("bitmap.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", img, "8M")).Ok();
        (await Tools.RunAsync("qemu-img", "bitmap", "--add", img, "b0")).Ok();
        const ulong Unknown = 1UL << 7;
        await WriteAutoclearAsync(img, await ReadAutoclearAsync(img) | Unknown);

        var (g, node) = await OpenAsync(img, readOnly: true);
        try
        {
            await node.ReopenAsync(false);
            await node.WriteAsync(0, new byte[65536]);
            await node.FlushAsync();
            // Dropped before the write reached the image, not only at close.
            Assert.Equal(Qcow2Layout.AutoclearBitmaps, await ReadAutoclearAsync(img) & (Unknown | Qcow2Layout.AutoclearBitmaps));
        }
        finally
        {
            await g.DisposeAsync();
        }

        Assert.Equal(Qcow2Layout.AutoclearBitmaps, await ReadAutoclearAsync(img));
        (await Tools.RunAsync("qemu-img", "check", img)).Ok();
        var info = (await Tools.RunAsync("qemu-img", "info", "--output=json", img)).Ok().Stdout;
        using var doc = System.Text.Json.JsonDocument.Parse(info);
        var bitmap = doc.RootElement.GetProperty("format-specific").GetProperty("data").GetProperty("bitmaps")[0];
        Assert.Equal("b0", bitmap.GetProperty("name").GetString());
        Assert.Equal(["auto"], bitmap.GetProperty("flags").EnumerateArray().Select(f => f.GetString()));
    }

    /// <summary>
    /// Growing an image over a longer backing file must not make the backing file's data (or, after a shrink,
    /// the guest's old data in the kept partial cluster) appear in the new area: it reads as zeros, as in qemu.
    /// </summary>
    [Fact]
    public async Task Growing_over_a_longer_backing_file_shows_zeros_in_the_new_area()
    {
        using var dir = new TempDir();
        string baseImg = dir.File("base.raw");
        string img = dir.File("top.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "raw", baseImg, "2M")).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 0x77 0 2M", baseImg)).Ok();
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", "-b", baseImg, "-F", "raw", img, "2M")).Ok();

        var (g, node) = await OpenAsync(img, readOnly: false);
        try
        {
            byte[] d = new byte[200_000];
            Array.Fill(d, (byte)0x5a);
            await node.WriteAsync(900_000, d);
            await node.TruncateAsync(1000 * 1024);
            await node.TruncateAsync(2 << 20);
            await node.FlushAsync();
        }
        finally
        {
            await g.DisposeAsync();
        }

        var check = await Tools.RunAsync("qemu-img", "check", img);
        Assert.True(check.ExitCode == 0, check.Stdout + check.Stderr);
        var read = await Tools.RunAsync("qemu-io", "-r", "-f", "qcow2", "-c", "read -P 0x77 0 900000", "-c", "read -P 0x5a 900000 124000",
            "-c", "read -P 0 1024000 1073152", img);
        Assert.DoesNotContain("Pattern verification failed", read.Stdout + read.Stderr, StringComparison.Ordinal);
        Assert.Contains("read 1073152/1073152", read.Stdout, StringComparison.Ordinal);
    }

    /// <summary>
    /// qemu takes any cache-clean-interval up to 2^32-1 seconds; a .NET timer takes at most about 49 days, so a
    /// longer interval must still open (and simply never clean within the timer's reach).
    /// </summary>
    [Theory]
    [InlineData(4294967295L)]
    [InlineData(5_000_000L)]
    public async Task A_cache_clean_interval_longer_than_a_timer_can_wait_still_opens(long seconds)
    {
        using var dir = new TempDir();
        string img = dir.File("clean.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", img, "8M")).Ok();
        var g = new BlockGraph();
        try
        {
            var o = ImageFormats.ImageOptions(img, "qcow2", false, "n0");
            o.Qcow2!.CacheCleanInterval = seconds;
            var node = await g.AddAsync(o);
            await node.WriteAsync(0, new byte[4096]);
        }
        finally
        {
            await g.DisposeAsync();
        }

        (await Tools.RunAsync("qemu-img", "check", img)).Ok();
    }

    private static async Task WriteAutoclearAsync(string img, ulong value)
    {
        byte[] h = new byte[8];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(h, value);
        await using var fs = File.OpenWrite(img);
        fs.Position = Qcow2Header.AutoclearFeaturesOffset;
        await fs.WriteAsync(h);
    }

    private static async Task<ulong> ReadAutoclearAsync(string img)
    {
        byte[] h = new byte[8];
        await using var fs = File.OpenRead(img);
        fs.Position = Qcow2Header.AutoclearFeaturesOffset;
        await fs.ReadExactlyAsync(h);
        return System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(h);
    }

    /// <summary>
    /// Many writers at once on interleaved 512-byte sectors of the same clusters (so every cluster is allocated,
    /// copied-on-write and zeroed by several writers at the same moment) with a two-table L2 cache: the result
    /// must match a model byte for byte and qemu-img must find the image clean.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Parallel_writers_on_shared_clusters_with_a_tiny_cache_match_the_model(bool lazy)
    {
        using var dir = new TempDir();
        string img = dir.File("par.qcow2");
        const int size = 4 << 20;
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096,lazy_refcounts=" + (lazy ? "on" : "off"), img, size.ToString(System.Globalization.CultureInfo.InvariantCulture))).Ok();
        // Some data that is already there, so that part of the writes overwrite and part allocate.
        (await Tools.RunAsync("qemu-io", "-f", "qcow2", "-c", "write -P 0x33 512k 1M", img)).Ok();
        byte[] model = new byte[size];
        Array.Fill(model, (byte)0x33, 512 << 10, 1 << 20);

        const int writers = 8;
        var (g, node) = await OpenAsync(img, readOnly: false, l2CacheSize: 8192);
        try
        {
            var tasks = new List<Task>();
            for (int t = 0; t < writers; t++)
            {
                int me = t;
                tasks.Add(Task.Run(async () =>
                {
                    var rnd = new Random(100 + me);
                    for (int i = 0; i < 150; i++)
                    {
                        // A run of this writer's sectors: sector s belongs to writer s % writers.
                        long first = (rnd.Next(size / 512 / writers) * writers) + me;
                        int n = rnd.Next(1, 4);
                        for (int k = 0; k < n; k++)
                        {
                            long sector = first + (k * writers);
                            if (sector >= size / 512)
                                break;
                            // Every fourth cluster belongs to the zeroing task below.
                            if ((sector * 512 / 4096) % 4 == 3)
                                continue;
                            byte[] d = new byte[512];
                            if (rnd.Next(6) == 0)
                            {
                                await node.WriteZeroesAsync(sector * 512, 512);
                            }
                            else
                            {
                                Array.Fill(d, (byte)rnd.Next(1, 256));
                                await node.WriteAsync(sector * 512, d);
                            }

                            lock (model)
                                d.CopyTo(model, sector * 512);
                        }
                    }
                }));
            }

            // Whole clusters of their own, in the same L2 tables, rewritten, zeroed (with and without unmap) and
            // discarded while the writers allocate around them.
            tasks.Add(Task.Run(async () =>
            {
                var rnd = new Random(7);
                for (int i = 0; i < 300; i++)
                {
                    long cluster = (rnd.Next(size / 4096 / 4) * 4) + 3;
                    long at = cluster * 4096;
                    byte[] d = new byte[4096];
                    switch (rnd.Next(5))
                    {
                        case 0:
                            await node.WriteZeroesAsync(at, 4096, RequestFlags.MayUnmap);
                            break;
                        case 1:
                            await node.WriteZeroesAsync(at, 4096);
                            break;
                        case 2:
                            await node.DiscardAsync(at, 4096);
                            break;
                        default:
                            {
                                int off = rnd.Next(4096);
                                int len = rnd.Next(1, 4096 - off + 1);
                                lock (model)
                                    Array.Copy(model, at, d, 0, 4096);
                                var part = new byte[len];
                                rnd.NextBytes(part);
                                part.CopyTo(d, off);
                                await node.WriteAsync(at + off, part);
                                break;
                            }
                    }

                    lock (model)
                        d.CopyTo(model, at);
                }
            }));

            // Flushes racing the allocations: write-back in the middle of a writer's lookup, data and mapping.
            tasks.Add(Task.Run(async () =>
            {
                for (int i = 0; i < 60; i++)
                {
                    await node.FlushAsync();
                    await Task.Yield();
                }
            }));
            await Task.WhenAll(tasks);
            await node.FlushAsync();
        }
        finally
        {
            await g.DisposeAsync();
        }

        var check = await Tools.RunAsync("qemu-img", "check", img);
        Assert.True(check.ExitCode == 0, check.Stdout + check.Stderr);
        string raw = dir.File("model.raw");
        await File.WriteAllBytesAsync(raw, model);
        var cmp = await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "qcow2", raw, img);
        Assert.True(cmp.ExitCode == 0, cmp.Stdout + cmp.Stderr);
    }
}
