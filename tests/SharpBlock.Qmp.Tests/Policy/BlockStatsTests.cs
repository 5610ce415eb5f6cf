using SharpBlock.Testing;

namespace SharpBlock.Qmp.Tests.Policy;

/// <summary>query-blockstats follows real I/O, on the device and on the node below it.</summary>
public class BlockStatsTests
{
    [Fact]
    public async Task Counters_move_with_reads_writes_and_flushes()
    {
        await using var h = await QmpHarness.StartAsync();
        string img = h.Dir.PatternFile("a.img", 4 << 20);
        var dev = await h.AddRawAsync("d0", img);
        for (int i = 0; i < 3; i++)
            await dev.WriteAsync(65536 + (i * 131072L), new byte[65536]);
        await dev.ReadAsync(0, new byte[4096]);
        await dev.ReadAsync(1 << 20, new byte[8192]);
        await dev.FlushAsync();
        await dev.FlushAsync();

        var all = await h.Client.ReturnAsync("query-blockstats");
        var s = all[0];
        Assert.Equal("d0", s.GetProperty("device").GetString());
        var st = s.GetProperty("stats");
        Assert.Equal(3 * 65536, st.GetProperty("wr_bytes").GetInt64());
        Assert.Equal(3, st.GetProperty("wr_operations").GetInt64());
        Assert.Equal(4096 + 8192, st.GetProperty("rd_bytes").GetInt64());
        Assert.Equal(2, st.GetProperty("rd_operations").GetInt64());
        Assert.Equal(2, st.GetProperty("flush_operations").GetInt64());
        Assert.Equal(65536 + (2 * 131072) + 65536, st.GetProperty("wr_highest_offset").GetInt64());
        Assert.True(st.GetProperty("wr_total_time_ns").GetInt64() > 0);
        Assert.True(st.GetProperty("rd_total_time_ns").GetInt64() > 0);
        Assert.True(st.GetProperty("flush_total_time_ns").GetInt64() > 0);

        // The file node under the raw format saw the same bytes.
        var parent = s.GetProperty("parent").GetProperty("stats");
        Assert.Equal(3 * 65536, parent.GetProperty("wr_bytes").GetInt64());
        Assert.Equal(4096 + 8192, parent.GetProperty("rd_bytes").GetInt64());
        Assert.Equal(2, parent.GetProperty("flush_operations").GetInt64());
        Assert.Equal(st.GetProperty("wr_highest_offset").GetInt64(), parent.GetProperty("wr_highest_offset").GetInt64());
    }

    [Fact]
    public async Task The_parent_chain_goes_through_a_filter()
    {
        await using var h = await QmpHarness.StartAsync();
        string img = h.Dir.PatternFile("a.img", 1 << 20);
        var dev = await h.AddRawAsync("d0", img, fileJson: QmpHarness.Blkdebug(img, "\"align\": 4096"));
        await dev.WriteAsync(100, new byte[1000]);
        var s = (await h.Client.ReturnAsync("query-blockstats"))[0];
        var filter = s.GetProperty("parent");
        var file = filter.GetProperty("parent");
        Assert.Equal(1000, s.GetProperty("stats").GetProperty("wr_bytes").GetInt64());
        Assert.Equal(1000, filter.GetProperty("stats").GetProperty("wr_bytes").GetInt64());
        // Below the filter the write became a read-modify-write of one aligned block.
        Assert.Equal(4096, file.GetProperty("stats").GetProperty("wr_bytes").GetInt64());
        Assert.Equal(1, file.GetProperty("stats").GetProperty("rd_operations").GetInt64());
        Assert.Equal(4096, file.GetProperty("stats").GetProperty("wr_highest_offset").GetInt64());
    }
}
