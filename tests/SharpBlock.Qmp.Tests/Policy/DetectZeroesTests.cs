using System.Globalization;
using System.Text.Json;
using SharpBlock.Testing;

namespace SharpBlock.Qmp.Tests.Policy;

/// <summary>detect-zeroes on a raw file: what a zero write leaves on disk, judged by qemu-img map and st_blocks.</summary>
public class DetectZeroesTests
{
    private const int MiB = 1 << 20;

    private static async Task<JsonElement> MapAt(string file, long offset)
    {
        var r = (await Tools.RunAsync("qemu-img", "map", "-U", "-f", "raw", "--output=json", file)).Ok();
        foreach (var e in JsonDocument.Parse(r.Stdout).RootElement.EnumerateArray())
        {
            long start = e.GetProperty("start").GetInt64();
            if (start <= offset && offset < start + e.GetProperty("length").GetInt64())
                return e.Clone();
        }

        throw new InvalidOperationException("no map entry at " + offset);
    }

    /// <summary>True when filefrag reports the extent holding this offset as unwritten (allocated, reads as zeros).</summary>
    private static async Task<bool> IsUnwrittenAt(string file, long offset)
    {
        var r = (await Tools.RunAsync("filefrag", "-v", "-b4096", file)).Ok();
        long block = offset / 4096;
        foreach (var line in r.Stdout.Split('\n'))
        {
            // " 0:      256..     511:    3661056..   3661311:    256:        256: last,unwritten"
            var cols = line.Split(':', StringSplitOptions.TrimEntries);
            if (cols.Length < 3 || !int.TryParse(cols[0], out _))
                continue;
            var range = cols[1].Split("..", StringSplitOptions.TrimEntries);
            if (long.Parse(range[0], CultureInfo.InvariantCulture) <= block && block <= long.Parse(range[1], CultureInfo.InvariantCulture))
                return line.Contains("unwritten", StringComparison.Ordinal);
        }

        return false;
    }

    private static async Task<long> AllocatedBytes(string file) =>
        long.Parse((await Tools.RunAsync("stat", "-c", "%b", file)).Ok().Stdout.Trim(), CultureInfo.InvariantCulture) * 512;

    private static async Task<(long Before, long After)> WriteDataThenZeros(QmpHarness h, string mode, string img)
    {
        string extra = $", \"detect-zeroes\": \"{mode}\", \"discard\": \"unmap\"";
        var dev = await h.AddRawAsync("d0", img, extra);
        var data = new byte[MiB];
        new Random(4).NextBytes(data);
        await dev.WriteAsync(MiB, data);
        await dev.FlushAsync();
        Assert.True((await MapAt(img, MiB)).GetProperty("data").GetBoolean());
        long before = await AllocatedBytes(img);
        await dev.WriteAsync(MiB, new byte[MiB]);
        await dev.FlushAsync();
        var back = new byte[MiB];
        await dev.ReadAsync(MiB, back);
        Assert.DoesNotContain(back, b => b != 0);
        return (before, await AllocatedBytes(img));
    }

    [Fact]
    public async Task Unmap_turns_a_zero_write_into_a_hole()
    {
        await using var h = await QmpHarness.StartAsync();
        string img = h.Dir.File("a.img");
        using (var f = File.Create(img))
            f.SetLength(4 * MiB);
        var (before, after) = await WriteDataThenZeros(h, "unmap", img);
        var m = await MapAt(img, MiB);
        Assert.False(m.GetProperty("data").GetBoolean());
        Assert.True(m.GetProperty("zero").GetBoolean());
        Assert.True(before - after >= MiB, $"allocation went from {before} to {after}: the range was not deallocated");
    }

    [Fact]
    public async Task On_turns_a_zero_write_into_write_zeroes_that_keeps_the_allocation()
    {
        await using var h = await QmpHarness.StartAsync();
        string img = h.Dir.File("a.img");
        using (var f = File.Create(img))
            f.SetLength(4 * MiB);
        var (before, after) = await WriteDataThenZeros(h, "on", img);
        // Zeroed in place: the blocks stay allocated but become an unwritten extent, which only a zero
        // write (fallocate ZERO_RANGE) makes; written zeros would be an ordinary extent.
        Assert.Equal(before, after);
        Assert.True(await IsUnwrittenAt(img, MiB), "the zeroed range is not an unwritten extent");
    }

    [Fact]
    public async Task Off_writes_the_zeros_as_data()
    {
        await using var h = await QmpHarness.StartAsync();
        string img = h.Dir.File("a.img");
        using (var f = File.Create(img))
            f.SetLength(4 * MiB);
        var (before, after) = await WriteDataThenZeros(h, "off", img);
        var m = await MapAt(img, MiB);
        Assert.True(m.GetProperty("data").GetBoolean());
        Assert.False(m.GetProperty("zero").GetBoolean());
        Assert.Equal(before, after);
        Assert.False(await IsUnwrittenAt(img, MiB));
    }
}
