using System.Buffers.Binary;
using SharpBlock.Drivers;
using SharpBlock.Drivers.Format.Parallels;
using SharpBlock.Drivers.Protocol.Memory;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Tests.Drivers.Vdi;

namespace SharpBlock.Tests.Drivers.Parallels;

/// <summary>Parallels over the memory node: frozen layout, round trips, BAT after data, the inuse mark, and refusals.</summary>
public class ParallelsNodeTests
{
    internal static async Task<byte[]> NewImageAsync(long size, ulong clusterSize)
    {
        var mem = new MemoryNode([], NodeSettings.Default, "new.parallels", 64L << 20);
        await using (mem)
        {
            await ParallelsCreator.CreateAsync(mem, size, clusterSize);
            return mem.ToArray();
        }
    }

    internal static MemoryNode Memory(byte[] image, bool readOnly = false) =>
        new(image, NodeSettings.Default with { ReadOnly = readOnly }, "test.parallels", image.Length + (32L << 20));

    [Fact]
    public void Layout_constants_are_frozen()
    {
        Assert.Equal(0x746F6E59u, ParallelsLayout.InUseMagic);
        Assert.Equal(0x1c, ParallelsHeader.TracksOffset);
        Assert.Equal(0x20, ParallelsHeader.BatEntriesOffset);
        Assert.Equal(0x24, ParallelsHeader.NbSectorsOffset);
        Assert.Equal(0x2c, ParallelsHeader.InUseOffset);
        Assert.Equal(0x30, ParallelsHeader.DataOffOffset);
        Assert.Equal(0x38, ParallelsHeader.ExtOffOffset);
        Assert.Equal(64, ParallelsHeader.Size);
    }

    [Theory]
    [InlineData(10L << 20, 1UL << 20, 1L << 20)]
    [InlineData(10L << 20, 4096UL, 12288L)]
    [InlineData(10L << 20, 1000UL, 41984L)]
    [InlineData(0L, 1UL << 20, 1L << 20)]
    public async Task New_images_have_qemus_layout(long size, ulong cluster, long fileLength)
    {
        byte[] img = await NewImageAsync(size, cluster);
        Assert.Equal(fileLength, img.Length);
        var h = ParallelsHeader.Read(img);
        Assert.Equal(ParallelsLayout.MagicClusters, h.Magic);
        Assert.Equal(2u, h.Version);
        Assert.Equal(0u, h.InUse);
        Assert.Equal((ulong)size / 512, h.NbSectors);
        Assert.Equal(fileLength / 512, h.DataOff);
        Assert.Equal(100, new ParallelsFormat().Probe(img, "x"));
        Assert.Equal(0, new ParallelsFormat().Probe(img.AsSpan(0, 63), "x"));
    }

    [Theory]
    [InlineData(0UL, "Image size is too large for this cluster size")]
    [InlineData(1UL << 32, "Cluster size is too large")]
    public async Task Qemus_create_refusals(ulong cluster, string message)
    {
        var ex = await Assert.ThrowsAsync<BlockException>(async () => await NewImageAsync(10 << 20, cluster));
        Assert.Equal(message, ex.Message);
    }

    [Theory]
    [InlineData(1UL << 20)]
    [InlineData(4096UL)]
    [InlineData(1536UL)]
    public async Task Writes_read_back_after_reopen_and_check_clean(ulong cluster)
    {
        const int size = 6 << 20;
        var mem = Memory(await NewImageAsync(size, cluster));
        var model = new byte[size];
        var rnd = new Random(3);
        var node = await ParallelsNode.OpenAsync(mem, NodeSettings.Default);
        // Open for writing: the inuse mark is on the disk.
        Assert.Equal(ParallelsLayout.InUseMagic, ParallelsHeader.Read(mem.ToArray()).InUse);
        for (int i = 0; i < 30; i++)
        {
            int off = rnd.Next(size - 1);
            int len = Math.Min(rnd.Next(1, 300_000), size - off);
            byte[] d = new byte[len];
            rnd.NextBytes(d);
            await node.WriteAsync(off, d);
            d.CopyTo(model, off);
        }

        await node.WriteAsync(size - 512, Enumerable.Repeat((byte)0xEE, 512).ToArray());
        Array.Fill(model, (byte)0xEE, size - 512, 512);
        await node.WriteZeroesAsync(0, 4096);
        Array.Clear(model, 0, 4096);
        await node.DisposeAsync();
        Assert.Equal(0u, ParallelsHeader.Read(mem.ToArray()).InUse);

        var again = await ParallelsNode.OpenAsync(Memory(mem.ToArray(), readOnly: true), NodeSettings.Default with { ReadOnly = true });
        await using (again)
        {
            byte[] got = new byte[size];
            await again.ReadAsync(0, got);
            Assert.True(model.AsSpan().SequenceEqual(got));
            var r = await again.CheckAsync(ImageCheckMode.None, null);
            Assert.Equal(0, r.Corruptions);
        }
    }

    [Fact]
    public async Task Concurrent_writes_into_the_same_new_clusters_all_land()
    {
        var mem = Memory(await NewImageAsync(8 << 20, 1 << 20));
        var node = await ParallelsNode.OpenAsync(mem, NodeSettings.Default);
        var model = new byte[node.Length];
        var tasks = new List<Task>();
        for (int i = 0; i < 64; i++)
        {
            long at = (i % 4 * (2L << 20)) + (i / 4 * 8192);
            byte[] d = Enumerable.Repeat((byte)(i + 1), 4096).ToArray();
            d.CopyTo(model, at);
            tasks.Add(node.WriteAsync(at, d).AsTask());
        }

        await Task.WhenAll(tasks);
        await node.DisposeAsync();
        await using var again = await ParallelsNode.OpenAsync(Memory(mem.ToArray(), true), NodeSettings.Default with { ReadOnly = true });
        byte[] got = new byte[model.Length];
        await again.ReadAsync(0, got);
        Assert.True(model.AsSpan().SequenceEqual(got));
        Assert.Equal(0, (await again.CheckAsync(ImageCheckMode.None, null)).Corruptions);
    }

    [Fact]
    public async Task The_bat_reaches_the_file_only_at_flush_after_the_data()
    {
        var mem = Memory(await NewImageAsync(4 << 20, 1 << 20));
        var node = await ParallelsNode.OpenAsync(mem, NodeSettings.Default);
        await using (node)
        {
            await node.WriteAsync(1 << 20, new byte[] { 1, 2, 3 });
            byte[] before = mem.ToArray();
            // The cluster is in the file, zero-padded, but the BAT does not name it yet.
            Assert.Equal(2 << 20, before.Length);
            Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(before.AsSpan(64 + 4)));
            await node.FlushAsync();
            Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(mem.ToArray().AsSpan(64 + 4)));
        }
    }

    [Fact]
    public async Task An_unclean_image_opens_read_only_and_check_reports_it()
    {
        byte[] img = await NewImageAsync(4 << 20, 4096);
        BinaryPrimitives.WriteUInt32LittleEndian(img.AsSpan(ParallelsHeader.InUseOffset), ParallelsLayout.InUseMagic);
        var ex = await Assert.ThrowsAsync<BlockException>(async () => await ParallelsNode.OpenAsync(Memory(img), NodeSettings.Default));
        Assert.Equal("parallels: Image was not closed correctly; cannot be opened read/write", ex.Message);
        await using var ro = await ParallelsNode.OpenAsync(Memory(img, true), NodeSettings.Default with { ReadOnly = true });
        var lines = new List<string>();
        var r = await ro.CheckAsync(ImageCheckMode.None, lines.Add);
        Assert.Equal(1, r.Corruptions);
        Assert.Contains("ERROR image was not closed correctly", lines);
    }

    [Theory]
    [InlineData(0, "XithoutFreeSpace", "Image not in Parallels format")]
    [InlineData(ParallelsHeader.VersionOffset, 3u, "Image not in Parallels format")]
    [InlineData(ParallelsHeader.TracksOffset, 0u, "Invalid image: Zero sectors per track")]
    [InlineData(ParallelsHeader.TracksOffset, 0x7fffffffu, "Invalid image: Too big cluster")]
    [InlineData(ParallelsHeader.BatEntriesOffset, 0x20000000u, "Catalog too large")]
    [InlineData(ParallelsHeader.BatEntriesOffset, 0x1000000u, "Invalid image: the BAT (bat_entries 16777216) lies beyond the end of the file (8192 bytes)")]
    public async Task Hostile_headers_are_refused_naming_the_field(int at, object value, string message)
    {
        byte[] img = await NewImageAsync(4 << 20, 4096);
        if (value is string s)
            System.Text.Encoding.ASCII.GetBytes(s).CopyTo(img, at);
        else
            BinaryPrimitives.WriteUInt32LittleEndian(img.AsSpan(at), (uint)value);
        var ex = await Assert.ThrowsAsync<BlockException>(async () => await ParallelsNode.OpenAsync(Memory(img, true), NodeSettings.Default with { ReadOnly = true }));
        Assert.Equal(message, ex.Message);
    }
}

/// <summary>Mutated Parallels images through the parallels fuzz target: no crash, no hang (PARALLELS_FUZZ_SEED=S PARALLELS_FUZZ_CASES=1 replays).</summary>
[Collection(SharpBlock.Tests.Fuzz.FuzzCollection.Name)]
public class ParallelsFuzzTests
{
    [Fact]
    public async Task Mutated_images_never_crash_or_hang()
    {
        var mem = ParallelsNodeTests.Memory(await ParallelsNodeTests.NewImageAsync(5 << 20, 4096));
        var node = await ParallelsNode.OpenAsync(mem, NodeSettings.Default);
        await using (node)
        {
            var rnd = new Random(1);
            byte[] d = new byte[6000];
            foreach (long at in (long[])[0, 3 << 20, (1 << 20) + 77])
            {
                rnd.NextBytes(d);
                await node.WriteAsync(at, d);
            }
        }

        byte[] seed = mem.ToArray();
        await FuzzCases.RunAsync("parallels", "PARALLELS", seed, [(0, 64), (0x1c, 0x20), (64, 64)], async img =>
        {
            try
            {
                await (await ParallelsNode.OpenAsync(ParallelsNodeTests.Memory(img, true), NodeSettings.Default with { ReadOnly = true })).DisposeAsync();
                return true;
            }
            catch (BlockException)
            {
                return false;
            }
        });
    }
}
