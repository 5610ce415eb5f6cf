using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;
using SharpBlock.Testing;

namespace SharpBlock.Tests.Drivers.Filter.Blkverify;

public class BlkverifyTests
{
    private const int Size = 64 << 10;

    private static BlockdevRef FileRef(string path) => new()
    {
        Definition = new BlockdevOptions { Driver = BlockdevDriver.File, File = new BlockdevOptionsFile { Filename = path } },
    };

    private static BlockdevOptions Options(BlockdevRef test, BlockdevRef raw) => new()
    {
        Driver = BlockdevDriver.Blkverify,
        NodeName = "v",
        Blkverify = new BlockdevOptionsBlkverify { Test = test, Raw = raw },
    };

    private static BlockdevRef Failing(string path, BlkdebugEvent e) => new()
    {
        Definition = new BlockdevOptions
        {
            Driver = BlockdevDriver.Blkdebug,
            Blkdebug = new BlockdevOptionsBlkdebug
            {
                Image = FileRef(path),
                InjectError = [new BlkdebugInjectErrorOptions { Event = e, Immediately = true }],
            },
        },
    };

    [Fact]
    public async Task Equal_children_read_and_writes_reach_both()
    {
        using var dir = new TempDir();
        string t = dir.PatternFile("t", Size), r = dir.PatternFile("r", Size);
        await using var g = new BlockGraph();
        var v = await g.AddAsync(Options(FileRef(t), FileRef(r)));
        Assert.Equal($"blkverify:{r}:{t}", v.Filename);
        Assert.Equal([ChildRole.Raw, ChildRole.Test], v.Children.Select(c => c.Role));
        var buf = new byte[4096];
        await v.ReadAsync(512, buf);
        Assert.Equal(File.ReadAllBytes(t).AsSpan(512, 4096).ToArray(), buf);
        var data = Enumerable.Repeat((byte)0x77, 1000).ToArray();
        await v.WriteAsync(3000, data);
        await v.WriteZeroesAsync(8192, 4096);
        await v.FlushAsync();
        Assert.Equal(File.ReadAllBytes(t), File.ReadAllBytes(r));
        Assert.Equal(data, File.ReadAllBytes(t).AsSpan(3000, 1000).ToArray());
        await v.ReadAsync(0, new byte[Size]);
    }

    [Fact]
    public async Task A_content_mismatch_fails_the_read_with_the_first_differing_sector()
    {
        using var dir = new TempDir();
        string t = dir.PatternFile("t", Size), r = dir.File("r");
        byte[] bytes = File.ReadAllBytes(t);
        bytes[9 * 512] ^= 1;
        bytes[12 * 512] ^= 1;
        File.WriteAllBytes(r, bytes);
        await using var g = new BlockGraph();
        var v = await g.AddAsync(Options(FileRef(t), FileRef(r)));
        await v.ReadAsync(0, new byte[9 * 512]);
        var ex = await Assert.ThrowsAsync<BlockException>(async () => await v.ReadAsync(4096, new byte[8192]));
        Assert.Equal(Errno.EIO, ex.Errno);
        Assert.Equal("blkverify: read sector_num=8 nb_sectors=16 contents mismatch in sector 9", ex.Message);
    }

    [Fact]
    public async Task Different_outcomes_are_a_return_value_mismatch()
    {
        using var dir = new TempDir();
        string t = dir.PatternFile("t", Size), r = dir.PatternFile("r", Size);
        await using var g = new BlockGraph();
        var v = await g.AddAsync(Options(Failing(t, BlkdebugEvent.WriteAio), FileRef(r)));
        var ex = await Assert.ThrowsAsync<BlockException>(async () => await v.WriteAsync(1024, new byte[512]));
        Assert.Equal("blkverify: write sector_num=2 nb_sectors=1 return value mismatch -5 != 0", ex.Message);

        // Fresh files: the first graph still holds its images' locks.
        string t2 = dir.PatternFile("t2", Size), r2 = dir.PatternFile("r2", Size);
        await using var g2 = new BlockGraph();
        var v2 = await g2.AddAsync(Options(FileRef(t2), Failing(r2, BlkdebugEvent.ReadAio)));
        ex = await Assert.ThrowsAsync<BlockException>(async () => await v2.ReadAsync(0, new byte[512]));
        Assert.Equal("blkverify: read sector_num=0 nb_sectors=1 return value mismatch 0 != -5", ex.Message);
    }
}
