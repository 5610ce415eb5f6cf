using SharpBlock.Drivers.Format.Qcow2;

namespace SharpBlock.Tests.Drivers.Qcow2;

/// <summary>The bounded metadata cache: capacity changes and the idle cleaning behind cache-clean-interval.</summary>
public class Qcow2CacheTests
{
    [Fact]
    public async Task Idle_cleaning_drops_only_clean_tables_unused_for_a_whole_interval()
    {
        var cache = new Qcow2Cache(8, 512);
        await cache.AddAsync(0x1000, new byte[512], dirty: false);
        await cache.AddAsync(0x2000, new byte[512], dirty: true);
        await cache.AddAsync(0x3000, new byte[512], dirty: false);

        // The first tick only marks: nothing has been idle for a whole interval yet.
        Assert.Equal(0, cache.DropIdleClean());
        Assert.NotNull(cache.TryGet(0x3000));
        // Second tick: 0x1000 was not touched since the mark and goes; 0x2000 is dirty and stays; 0x3000 was used.
        Assert.Equal(1, cache.DropIdleClean());
        Assert.Null(cache.TryGet(0x1000));
        Assert.NotNull(cache.TryGet(0x2000));
        Assert.NotNull(cache.TryGet(0x3000));
    }

    [Fact]
    public async Task Lowering_the_capacity_evicts_down_to_it_on_the_next_add_and_never_below_four()
    {
        var written = new List<long>();
        var cache = new Qcow2Cache(16, 512);
        cache.WriteBack = e =>
        {
            written.Add(e.Offset);
            e.Dirty = false;
            return ValueTask.CompletedTask;
        };
        for (int i = 0; i < 10; i++)
            await cache.AddAsync(i * 512L, new byte[512], dirty: i == 0);
        cache.Capacity = 1;
        Assert.Equal(4, cache.Capacity);
        await cache.AddAsync(100 * 512L, new byte[512], dirty: false);
        Assert.Equal(4, cache.Count);
        // Clean tables leave first: the dirty one is still there, not written.
        Assert.Empty(written);
        Assert.NotNull(cache.TryGet(0));
        // With every table dirty, the oldest is written back before it goes.
        for (int i = 0; i < 4; i++)
            await cache.AddAsync((200 + i) * 512L, new byte[512], dirty: true);
        Assert.Equal(4, cache.Count);
        Assert.Contains(0L, written);
    }

    [Fact]
    public void Cache_sizes_follow_qemu_when_only_one_is_given()
    {
        var (l2, refcount) = Qcow2Node.ComputeCacheSizes(new Qcow2CacheOptions(null, 1 << 20, null, null, null), 65536, 1L << 40);
        Assert.Equal(1L << 20, l2);
        Assert.Equal(4L * 65536, refcount);
        (l2, refcount) = Qcow2Node.ComputeCacheSizes(new Qcow2CacheOptions(null, 64L << 20, null, null, null), 65536, 1L << 30);
        Assert.Equal(128L * 1024, l2); // never more than the whole disk needs
        Assert.Equal(4L * 65536, refcount);
    }
}
