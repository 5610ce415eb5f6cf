using System.Buffers.Binary;
using SharpBlock.Drivers.Format.Raw;
using SharpBlock.Drivers.Protocol.Memory;
using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Tests.Drivers.Raw;

/// <summary>
/// A raw image whose format was only guessed must not let a write turn it into something a later probe
/// takes for another format (a qcow2 header naming a backing file could then expose any host file).
/// </summary>
public class ProbedRawTests
{
    private static byte[] Qcow2Header()
    {
        var h = new byte[512];
        BinaryPrimitives.WriteUInt32BigEndian(h, 0x514649fb);
        BinaryPrimitives.WriteUInt32BigEndian(h.AsSpan(4), 3);
        return h;
    }

    private static (MemoryNode File, RawNode Raw) Open(bool guessed)
    {
        var file = new MemoryNode(new byte[1 << 20], NodeSettings.Default);
        var raw = new RawNode(file, NodeSettings.Default);
        if (guessed)
            raw.GuardProbedFormat(BlockDriverRegistry.Default);
        return (file, raw);
    }

    [Fact]
    public async Task A_write_that_makes_the_first_sector_a_qcow2_header_is_refused_and_nothing_is_written()
    {
        var (file, raw) = Open(guessed: true);
        await using var _ = raw;
        var ex = await Assert.ThrowsAsync<BlockException>(async () => await raw.WriteAsync(0, Qcow2Header()));
        Assert.Equal(Errno.EPERM, ex.Errno);
        Assert.Equal("Operation not permitted", ex.Message);
        Assert.All(file.ToArray().AsSpan(0, 512).ToArray(), b => Assert.Equal(0, b));
    }

    [Fact]
    public async Task The_check_looks_at_the_whole_sector_a_small_write_would_leave()
    {
        var (file, raw) = Open(guessed: true);
        await using var _ = raw;
        var header = Qcow2Header();
        // Everything but the magic's first byte is harmless on its own...
        await raw.WriteAsync(1, header.AsMemory(1, 511));
        // ...and the byte that completes the magic is what gets refused.
        await Assert.ThrowsAsync<BlockException>(async () => await raw.WriteAsync(0, header.AsMemory(0, 1)));
        Assert.Equal(0, file.ToArray()[0]);
    }

    [Fact]
    public async Task Ordinary_data_past_or_in_the_first_sector_is_written()
    {
        var (file, raw) = Open(guessed: true);
        await using var _ = raw;
        var data = new byte[4096];
        new Random(1).NextBytes(data);
        data[0] = 0xeb;
        await raw.WriteAsync(0, data);
        await raw.WriteAsync(4096, Qcow2Header());
        Assert.Equal(data, file.ToArray().AsSpan(0, 4096).ToArray());
        Assert.Equal(0x51, file.ToArray()[4096]);
    }

    [Fact]
    public async Task A_raw_image_named_as_raw_takes_any_first_sector()
    {
        var (file, raw) = Open(guessed: false);
        await using var _ = raw;
        await raw.WriteAsync(0, Qcow2Header());
        Assert.Equal(0x51, file.ToArray()[0]);
    }
}
