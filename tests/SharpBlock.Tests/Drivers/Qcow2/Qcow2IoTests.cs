using SharpBlock.Drivers;
using SharpBlock.Drivers.Creation;
using SharpBlock.Drivers.Format.Qcow2;
using SharpBlock.Io;
using SharpBlock.Testing;

namespace SharpBlock.Tests.Drivers.Qcow2;

/// <summary>Reads and writes against an in-memory model of the guest disk, then a check of the metadata.</summary>
public class Qcow2IoTests
{
    private static async Task AssertContentAsync(Qcow2TestImage img, byte[] model)
    {
        byte[] got = new byte[model.Length];
        await img.Node.ReadAsync(0, got);
        Assert.True(model.AsSpan().SequenceEqual(got), "guest content differs from the model");
    }

    private static async Task AssertCleanAsync(Qcow2TestImage img)
    {
        var r = await img.Qcow2.CheckAsync(ImageCheckMode.None, null);
        Assert.Equal(0, r.Corruptions);
        Assert.Equal(0, r.Leaks);
    }

    [Theory]
    [InlineData(512, 16, "1.1")]
    [InlineData(512, 1, "1.1")]
    [InlineData(4096, 64, "1.1")]
    [InlineData(65536, 16, "0.10")]
    [InlineData(65536, 2, "1.1")]
    [InlineData(2 << 20, 8, "1.1")]
    public async Task Random_writes_zeroes_and_discards_match_a_model(int clusterSize, int refcountBits, string compat)
    {
        using var dir = new TempDir();
        int size = Math.Max(4 << 20, clusterSize * 4);
        string p = await Qcow2TestImage.CreateAsync(dir.File("io.qcow2"), size, clusterSize, compat, refcountBits);
        var model = new byte[size];
        var rnd = new Random(clusterSize ^ refcountBits);
        await using (var img = await Qcow2TestImage.OpenAsync(p, discard: true))
        {
            for (int i = 0; i < 60; i++)
            {
                int off = rnd.Next(size);
                int len = Math.Min(rnd.Next(1, clusterSize * 3), size - off);
                int op = rnd.Next(10);
                if (op < 7)
                {
                    byte[] data = new byte[len];
                    rnd.NextBytes(data);
                    await img.Node.WriteAsync(off, data);
                    data.CopyTo(model, off);
                }
                else if (op < 9)
                {
                    await img.Node.WriteZeroesAsync(off, len, op == 8 ? RequestFlags.MayUnmap : RequestFlags.None);
                    Array.Clear(model, off, len);
                }
                else
                {
                    // Discard may drop data or not; keep the model exact by zeroing first.
                    await img.Node.WriteZeroesAsync(off, len);
                    Array.Clear(model, off, len);
                    await img.Node.DiscardAsync(off, len);
                }

                if (i % 20 == 19)
                    await img.Node.FlushAsync();
            }

            await AssertContentAsync(img, model);
            await img.Node.FlushAsync();
            await AssertCleanAsync(img);
        }

        await using (var again = await Qcow2TestImage.OpenAsync(p, readOnly: true))
        {
            await AssertContentAsync(again, model);
            await AssertCleanAsync(again);
        }
    }

    [Fact]
    public async Task Partial_writes_copy_the_rest_of_the_cluster_from_the_backing_file()
    {
        using var dir = new TempDir();
        string basePath = await Qcow2TestImage.CreateAsync(dir.File("base.qcow2"), 1 << 20);
        var model = new byte[1 << 20];
        new Random(3).NextBytes(model);
        await using (var b = await Qcow2TestImage.OpenAsync(basePath))
            await b.Node.WriteAsync(0, model);
        string top = await Qcow2TestImage.CreateAsync(dir.File("top.qcow2"), 1 << 20, backing: "base.qcow2", backingFormat: "qcow2");
        await using (var t = await Qcow2TestImage.OpenAsync(top))
        {
            Assert.NotNull(t.Node.Backing);
            byte[] data = new byte[100];
            Array.Fill(data, (byte)0xEE);
            await t.Node.WriteAsync(65536 + 1000, data);
            data.CopyTo(model, 65536 + 1000);
            await AssertContentAsync(t, model);
            var st = await t.Node.GetBlockStatusAsync(0, 1 << 20);
            Assert.False(st.IsAllocated);
            Assert.Equal(65536, st.Length);
            await t.Node.WriteZeroesAsync(0, 65536);
            Array.Clear(model, 0, 65536);
            await AssertContentAsync(t, model);
            await t.Node.FlushAsync();
            await AssertCleanAsync(t);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Partial_writes_into_fresh_clusters_read_zeros_around_the_data(bool staleFile)
    {
        using var dir = new TempDir();
        const int Cluster = 65536;
        string p = await Qcow2TestImage.CreateAsync(dir.File("z.qcow2"), 1 << 20);
        if (staleFile)
        {
            // Free clusters past the metadata that still hold old bytes, as clusters freed without a punch do.
            await using var fs = new FileStream(p, FileMode.Append);
            byte[] junk = new byte[1 << 20];
            Array.Fill(junk, (byte)0xAA);
            await fs.WriteAsync(junk);
        }

        var model = new byte[1 << 20];
        await using (var img = await Qcow2TestImage.OpenAsync(p))
        {
            if (!staleFile)
            {
                // Allocated zero clusters: the write moves to new clusters, zero around it.
                byte[] full = new byte[Cluster * 2];
                Array.Fill(full, (byte)0xAA);
                await img.Node.WriteAsync(0, full);
                await img.Node.WriteZeroesAsync(0, full.Length);
                await img.Node.FlushAsync();
            }

            byte[] data = new byte[4096];
            Array.Fill(data, (byte)0x5C);
            foreach (int off in new[] { 1000, Cluster + Cluster - 4096, (5 * Cluster) + 300 })
            {
                await img.Node.WriteAsync(off, data);
                data.CopyTo(model, off);
            }

            await AssertContentAsync(img, model);
            await img.Node.FlushAsync();
            var r = await img.Qcow2.CheckAsync(ImageCheckMode.None, null);
            Assert.Equal(0, r.Corruptions);
        }

        await using var again = await Qcow2TestImage.OpenAsync(p, readOnly: true);
        await AssertContentAsync(again, model);
    }

    [Fact]
    public async Task Concurrent_writes_to_the_same_and_different_clusters_are_safe()
    {
        using var dir = new TempDir();
        string p = await Qcow2TestImage.CreateAsync(dir.File("c.qcow2"), 8 << 20, 4096);
        await using var img = await Qcow2TestImage.OpenAsync(p);
        var tasks = new List<Task>();
        for (int i = 0; i < 64; i++)
        {
            int n = i;
            tasks.Add(Task.Run(async () =>
            {
                byte[] d = new byte[1024];
                Array.Fill(d, (byte)(n + 1));
                // Each task owns a 1 KiB slot; 4 slots share each 4 KiB cluster.
                await img.Node.WriteAsync(n * 1024L, d);
                await img.Node.WriteAsync((4 << 20) + (n * 8192L), d);
            }));
        }

        await Task.WhenAll(tasks);
        for (int i = 0; i < 64; i++)
        {
            byte[] b = new byte[1024];
            await img.Node.ReadAsync(i * 1024L, b);
            Assert.All(b, x => Assert.Equal((byte)(i + 1), x));
            await img.Node.ReadAsync((4 << 20) + (i * 8192L), b);
            Assert.All(b, x => Assert.Equal((byte)(i + 1), x));
        }

        await img.Node.FlushAsync();
        await AssertCleanAsync(img);
    }

    [Fact]
    public async Task Refcount_table_and_L1_grow()
    {
        using var dir = new TempDir();
        // 512-byte clusters with 64-bit refcounts: one refcount block covers only 64 clusters and the
        // first refcount table only 64 blocks, so filling 3 MiB forces both to grow.
        string p = await Qcow2TestImage.CreateAsync(dir.File("g.qcow2"), 3 << 20, 512, refcountBits: 64);
        var model = new byte[6 << 20];
        await using (var img = await Qcow2TestImage.OpenAsync(p))
        {
            var rnd = new Random(9);
            byte[] chunk = new byte[256 << 10];
            for (int off = 0; off < (3 << 20); off += chunk.Length)
            {
                rnd.NextBytes(chunk);
                await img.Node.WriteAsync(off, chunk);
                chunk.CopyTo(model, off);
            }

            await img.Node.TruncateAsync(6 << 20);
            rnd.NextBytes(chunk);
            await img.Node.WriteAsync((6 << 20) - chunk.Length, chunk);
            chunk.CopyTo(model, (6 << 20) - chunk.Length);
            await AssertContentAsync(img, model);
            await img.Node.FlushAsync();
            await AssertCleanAsync(img);
        }

        await using var again = await Qcow2TestImage.OpenAsync(p, readOnly: true);
        Assert.Equal(6 << 20, again.Node.Length);
        await AssertContentAsync(again, model);
    }

    [Fact]
    public async Task Compressed_clusters_round_trip()
    {
        using var dir = new TempDir();
        string p = await Qcow2TestImage.CreateAsync(dir.File("z.qcow2"), 1 << 20, 65536);
        var model = new byte[1 << 20];
        for (int i = 0; i < model.Length; i++)
            model[i] = (byte)(i / 100 % 7);
        await using (var img = await Qcow2TestImage.OpenAsync(p))
        {
            for (int off = 0; off < model.Length; off += 65536)
                await img.Qcow2.WriteCompressedAsync(off, model.AsMemory(off, 65536));
            await AssertContentAsync(img, model);
            // Overwriting part of a compressed cluster decompresses it into a normal one.
            model[70000] = 0xFF;
            await img.Node.WriteAsync(70000, new byte[] { 0xFF });
            await AssertContentAsync(img, model);
            await img.Node.FlushAsync();
            var r = await img.Qcow2.CheckAsync(ImageCheckMode.None, null);
            Assert.Equal(0, r.Corruptions);
            Assert.Equal(0, r.Leaks);
            Assert.Equal(15, r.CompressedClusters);
        }
    }

    [Fact]
    public async Task Dirty_image_is_repaired_on_read_write_open()
    {
        using var dir = new TempDir();
        string p = await Qcow2TestImage.CreateAsync(dir.File("d.qcow2"), 1 << 20, lazy: true);
        await using (var img = await Qcow2TestImage.OpenAsync(p))
        {
            await img.Node.WriteAsync(0, new byte[4096]);
            await img.Node.WriteAsync(65536, Enumerable.Repeat((byte)1, 4096).ToArray());
            await img.Node.FlushAsync();
            Assert.True(img.Qcow2.IsDirty);
        }

        Assert.Equal(0UL, Qcow2HostileImageTests.ReadHeader(p).IncompatibleFeatures & Qcow2Layout.IncompatDirty);
        // Simulate a crash: dirty bit set and a refcount block that lost an increment.
        using (var fs = new FileStream(p, FileMode.Open, FileAccess.ReadWrite))
        {
            byte[] b = new byte[8];
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(b, Qcow2Layout.IncompatDirty);
            fs.Position = Qcow2Header.IncompatibleFeaturesOffset;
            fs.Write(b);
            var h = Qcow2HostileImageTests.ReadHeader(p);
            fs.Position = (long)h.RefcountTableOffset;
            fs.ReadExactly(b);
            long rb = (long)System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(b);
            byte[] blk = new byte[65536];
            fs.Position = rb;
            fs.ReadExactly(blk);
            int last = 0;
            for (int i = 0; i < 32768; i++)
            {
                if (blk[(i * 2) + 1] != 0)
                    last = i;
            }

            fs.Position = rb + (last * 2);
            fs.Write(new byte[2]);
        }

        await using (var img = await Qcow2TestImage.OpenAsync(p))
        {
            Assert.False(img.Qcow2.IsDirty);
            var r = await img.Qcow2.CheckAsync(ImageCheckMode.None, null);
            Assert.Equal(0, r.Corruptions);
            Assert.Equal(0, r.Leaks);
            byte[] b = new byte[4096];
            await img.Node.ReadAsync(65536, b);
            Assert.All(b, x => Assert.Equal(1, x));
        }
    }

    [Theory]
    [InlineData(Preallocation.Metadata)]
    [InlineData(Preallocation.Falloc)]
    [InlineData(Preallocation.Full)]
    public async Task Preallocated_images_read_zeros_and_are_consistent(Preallocation mode)
    {
        using var dir = new TempDir();
        string p = await Qcow2TestImage.CreateAsync(dir.File("p.qcow2"), 2 << 20, prealloc: mode);
        await using var img = await Qcow2TestImage.OpenAsync(p);
        await AssertContentAsync(img, new byte[2 << 20]);
        var st = await img.Node.GetBlockStatusAsync(0, 2 << 20);
        Assert.True(st.IsAllocated);
        Assert.Equal(2 << 20, st.Length);
        await AssertCleanAsync(img);
    }
}
