using SharpBlock.Jobs;

namespace SharpBlock.Tests.Jobs;

/// <summary>The dirty bitmap's chunk arithmetic: what a write sets, what a copy clears, and the runs a job finds.</summary>
public class DirtyBitmapTests
{
    [Fact]
    public void A_write_dirties_every_chunk_it_touches_and_counts_whole_chunks()
    {
        var b = new DirtyBitmap(1 << 20, 65536);
        b.Set(65535, 2);
        Assert.True(b.IsDirty(0));
        Assert.True(b.IsDirty(65536));
        Assert.False(b.IsDirty(131072));
        Assert.Equal(131072, b.DirtyBytes);
        // Setting again counts nothing twice.
        b.Set(0, 131072);
        Assert.Equal(131072, b.DirtyBytes);
        b.Clear(0, 65536);
        Assert.Equal(65536, b.DirtyBytes);
        Assert.False(b.IsDirty(100));
    }

    [Fact]
    public void The_last_partial_chunk_is_found_up_to_the_device_end_and_writes_past_it_are_cut()
    {
        var b = new DirtyBitmap(100_000, 65536);
        b.Set(70_000, 1 << 20);
        // Counts are whole chunks (as QEMU's), but never more than the device.
        Assert.Equal(65536, b.DirtyBytes);
        Assert.True(b.TryGetNextDirty(0, long.MaxValue, out long start, out long length));
        Assert.Equal((65536L, 100_000L - 65536), (start, length));
        b.Set(0, 1);
        Assert.Equal(100_000, b.DirtyBytes);
    }

    [Fact]
    public void Runs_are_found_in_order_capped_at_the_length_asked_and_across_64_chunk_words()
    {
        const int g = 4096;
        var b = new DirtyBitmap(1000L * g, g);
        b.Set(3 * g, 2 * g);
        b.Set(130 * g, 70 * g);
        var runs = new List<(long, long)>();
        for (long off = 0; b.TryGetNextDirty(off, 32 * g, out long s, out long l); off = s + l)
            runs.Add((s / g, l / g));
        Assert.Equal([(3L, 2L), (130L, 32L), (162L, 32L), (194L, 6L)], runs);
        Assert.False(b.TryGetNextDirty(200 * g, long.MaxValue, out _, out _));
    }

    [Fact]
    public void Growing_keeps_the_bits_and_adds_clean_chunks()
    {
        var b = new DirtyBitmap(64 * 512, 512);
        b.Set(63 * 512, 512);
        b.Resize(1000 * 512);
        Assert.True(b.IsDirty(63 * 512));
        Assert.False(b.IsDirty(999 * 512));
        b.Set(999 * 512, 512);
        Assert.Equal(2 * 512, b.DirtyBytes);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-4096)]
    [InlineData(3000)]
    public void The_granularity_must_be_a_power_of_two(int granularity) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new DirtyBitmap(1 << 20, granularity));

    [Fact]
    public void A_merge_keeps_every_dirty_byte_whatever_the_two_granularities()
    {
        var fine = new DirtyBitmap(1 << 20, 512);
        fine.Set(70_000, 1);
        var coarse = new DirtyBitmap(1 << 20, 65536);
        coarse.Merge(fine);
        Assert.True(coarse.IsDirty(65536));
        Assert.Equal(65536, coarse.DirtyChunkBytes);

        // Coarse into fine: every fine chunk under the coarse one.
        var back = new DirtyBitmap(1 << 20, 4096);
        back.Merge(coarse);
        Assert.Equal(65536, back.DirtyChunkBytes);
        Assert.True(back.IsDirty(65536) && back.IsDirty(131071) && !back.IsDirty(131072));
    }

    [Fact]
    public void A_merge_from_a_chunk_wider_than_the_device_ends()
    {
        // The source's one chunk runs past its end: a merge once looped on it forever.
        var huge = new DirtyBitmap(64 << 20, 1L << 31);
        huge.Set(5, 1);
        Assert.Equal(1L << 31, huge.DirtyChunkBytes);
        var target = new DirtyBitmap(64 << 20, 65536);
        target.Merge(huge);
        Assert.Equal(64 << 20, target.DirtyChunkBytes);
    }

    [Fact]
    public void Bytes_out_and_in_are_qcow2s_layout_and_a_shrink_drops_the_bits_past_the_end()
    {
        var b = new DirtyBitmap(1 << 20, 512);
        b.Set(0, 1);
        b.Set(512 * 9, 1);
        byte[] bytes = new byte[4];
        b.GetBytes(0, bytes);
        // Chunk 0 is bit 0 of byte 0; chunk 9 is bit 1 of byte 1.
        Assert.Equal(new byte[] { 0x01, 0x02, 0, 0 }, bytes);
        var c = new DirtyBitmap(1 << 20, 512);
        c.SetBytes(0, bytes);
        Assert.Equal(1024, c.DirtyChunkBytes);
        Assert.True(c.IsDirty(512 * 9));

        c.Resize(512 * 5);
        Assert.Equal(512, c.DirtyChunkBytes);
        c.Resize(1 << 20);
        Assert.False(c.IsDirty(512 * 9));
    }
}
