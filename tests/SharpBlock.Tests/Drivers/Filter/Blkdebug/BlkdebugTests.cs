using SharpBlock.Drivers.Filter.Blkdebug;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;
using SharpBlock.Testing;

namespace SharpBlock.Tests.Drivers.Filter.Blkdebug;

public class BlkdebugTests
{
    private static BlockdevOptions Options(string file, BlockdevOptionsBlkdebug? o = null)
    {
        o ??= new BlockdevOptionsBlkdebug { Image = null! };
        o.Image = new BlockdevRef
        {
            Definition = new BlockdevOptions { Driver = BlockdevDriver.File, File = new BlockdevOptionsFile { Filename = file } },
        };
        return new BlockdevOptions { Driver = BlockdevDriver.Blkdebug, NodeName = "dbg", Blkdebug = o };
    }

    private static async Task<(BlockGraph Graph, BlkdebugNode Node)> OpenAsync(string file, BlockdevOptionsBlkdebug? o = null)
    {
        var g = new BlockGraph();
        var node = (BlkdebugNode)await g.AddAsync(Options(file, o));
        return (g, node);
    }

    [Fact]
    public async Task Read_rule_fails_once_with_the_given_errno()
    {
        using var dir = new TempDir();
        string f = dir.PatternFile("a.img", 64 << 10);
        var (g, node) = await OpenAsync(f, new BlockdevOptionsBlkdebug
        {
            Image = null!,
            InjectError = [new BlkdebugInjectErrorOptions { Event = BlkdebugEvent.ReadAio, Errno = 28, Once = true }],
        });
        await using var _ = g;
        var buf = new byte[4096];
        var ex = await Assert.ThrowsAsync<BlockException>(async () => await node.ReadAsync(0, buf));
        Assert.Equal(Errno.ENOSPC, ex.Errno);
        await node.ReadAsync(0, buf);
        Assert.Equal(File.ReadAllBytes(f).AsSpan(0, 4096).ToArray(), buf);
        Assert.Equal("blkdebug", node.DriverName);
        Assert.Equal(f, node.Filename);
    }

    [Fact]
    public async Task Default_errno_is_EIO_and_a_rule_without_once_keeps_failing()
    {
        using var dir = new TempDir();
        string f = dir.PatternFile("a.img", 64 << 10);
        var (g, node) = await OpenAsync(f, new BlockdevOptionsBlkdebug
        {
            Image = null!,
            InjectError = [new BlkdebugInjectErrorOptions { Event = BlkdebugEvent.WriteAio, Immediately = true }],
        });
        await using var _ = g;
        for (int i = 0; i < 3; i++)
        {
            var ex = await Assert.ThrowsAsync<BlockException>(async () => await node.WriteAsync(0, new byte[512]));
            Assert.Equal(Errno.EIO, ex.Errno);
        }

        // Nothing reached the file.
        Assert.Equal(File.ReadAllBytes(dir.PatternFile("b.img", 64 << 10)), File.ReadAllBytes(f));
    }

    [Fact]
    public async Task Sector_rule_fails_only_requests_touching_that_sector()
    {
        using var dir = new TempDir();
        string f = dir.PatternFile("a.img", 64 << 10);
        var (g, node) = await OpenAsync(f, new BlockdevOptionsBlkdebug
        {
            Image = null!,
            InjectError = [new BlkdebugInjectErrorOptions { Event = BlkdebugEvent.ReadAio, Sector = 8 }],
        });
        await using var _ = g;
        var buf = new byte[512];
        await node.ReadAsync(0, buf);
        await node.ReadAsync(3584, buf);
        await node.ReadAsync(4608, buf);
        await Assert.ThrowsAsync<BlockException>(async () => await node.ReadAsync(4096, buf));
        await Assert.ThrowsAsync<BlockException>(async () => await node.ReadAsync(4000, new byte[200]));
        await node.FlushAsync();
    }

    [Fact]
    public async Task Set_state_rules_arm_errors_in_later_states()
    {
        using var dir = new TempDir();
        string f = dir.PatternFile("a.img", 64 << 10);
        var (g, node) = await OpenAsync(f, new BlockdevOptionsBlkdebug
        {
            Image = null!,
            InjectError = [new BlkdebugInjectErrorOptions { Event = BlkdebugEvent.ReadAio, State = 2 }],
            SetState = [new BlkdebugSetStateOptions { Event = BlkdebugEvent.WriteAio, State = 1, NewState = 2 }],
        });
        await using var _ = g;
        var buf = new byte[512];
        await node.ReadAsync(0, buf);
        Assert.Equal(1, node.State);
        await node.WriteAsync(0, buf);
        Assert.Equal(2, node.State);
        await Assert.ThrowsAsync<BlockException>(async () => await node.ReadAsync(0, buf));
    }

    [Fact]
    public async Task Formats_fire_their_own_events_through_the_hook()
    {
        using var dir = new TempDir();
        string f = dir.PatternFile("a.img", 64 << 10);
        var g = new BlockGraph();
        await using var _ = g;
        // raw over blkdebug: the raw node hands the event down to its file child, the filter.
        var raw = await g.AddAsync(new BlockdevOptions
        {
            Driver = BlockdevDriver.Raw,
            NodeName = "top",
            Raw = new BlockdevOptionsGenericFormat
            {
                File = new BlockdevRef
                {
                    Definition = Options(f, new BlockdevOptionsBlkdebug
                    {
                        Image = null!,
                        InjectError = [new BlkdebugInjectErrorOptions { Event = BlkdebugEvent.L2Load, Errno = 61, Once = true }],
                    })
                }
            },
        });
        var buf = new byte[512];
        await raw.ReadAsync(0, buf);
        raw.DebugEvent(BlkdebugEvent.L2Load);
        var ex = await Assert.ThrowsAsync<BlockException>(async () => await raw.ReadAsync(0, buf));
        Assert.Equal(Errno.ENODATA, ex.Errno);
        await raw.ReadAsync(0, buf);
    }

    [Fact]
    public async Task Config_file_rules_work_as_in_qemu()
    {
        using var dir = new TempDir();
        string f = dir.PatternFile("a.img", 64 << 10);
        string cfg = dir.File("rules.cfg");
        File.WriteAllText(cfg, """
            # fail the second read, once
            [set-state]
            event = "read_aio"
            state = "1"
            new_state = "2"

            [inject-error]
            event = "read_aio"
            state = "2"
            errno = "5"
            once = "on"
            """);
        var (g, node) = await OpenAsync(f, new BlockdevOptionsBlkdebug { Image = null!, Config = cfg });
        await using (g)
        {
            var buf = new byte[512];
            await node.ReadAsync(0, buf);
            await Assert.ThrowsAsync<BlockException>(async () => await node.ReadAsync(0, buf));
            await node.ReadAsync(0, buf);
        }

        // QEMU reads the same file the same way: the first read passes, the second fails.
        var r = await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "read 0 512", "-c", "read 0 512", "-c", "read 0 512", $"blkdebug:{cfg}:{f}");
        Assert.Equal(1, CountOf(r.Stdout + r.Stderr, "Input/output error"));
        Assert.Equal(2, CountOf(r.Stdout, "read 512/512 bytes"));
    }

    [Fact]
    public async Task Bad_config_and_align_are_refused()
    {
        using var dir = new TempDir();
        string f = dir.PatternFile("a.img", 4096);
        string cfg = dir.File("rules.cfg");
        File.WriteAllText(cfg, "[inject-error]\nevent = \"no_such_event\"\n");
        var ex = await Assert.ThrowsAsync<BlockException>(async () => await OpenAsync(f, new BlockdevOptionsBlkdebug { Image = null!, Config = cfg }));
        Assert.Contains("Invalid event name \"no_such_event\"", ex.Message, StringComparison.Ordinal);
        ex = await Assert.ThrowsAsync<BlockException>(async () => await OpenAsync(f, new BlockdevOptionsBlkdebug { Image = null!, Config = dir.File("missing") }));
        Assert.Equal("Could not read blkdebug config file: No such file or directory", ex.Message);
        ex = await Assert.ThrowsAsync<BlockException>(async () => await OpenAsync(f, new BlockdevOptionsBlkdebug { Image = null!, Align = 3000 }));
        Assert.Equal("Cannot meet constraints with align 3000", ex.Message);
    }

    [Fact]
    public async Task Align_turns_unaligned_writes_into_serialised_read_modify_write()
    {
        using var dir = new TempDir();
        string f = dir.PatternFile("a.img", 64 << 10);
        byte[] expected = File.ReadAllBytes(f);
        var (g, node) = await OpenAsync(f, new BlockdevOptionsBlkdebug { Image = null!, Align = 4096 });
        await using (g)
        {
            Assert.Equal(4096, node.RequestAlignment);
            // Many small writes into the same few blocks at once: each is a read-modify-write of a whole
            // block, so without serialisation some would overwrite the others with stale bytes.
            var rnd = new Random(7);
            var tasks = new List<Task>();
            for (int i = 0; i < 64; i++)
            {
                int off = 1000 + (i * 300);
                var data = new byte[300];
                rnd.NextBytes(data);
                data.CopyTo(expected, off);
                tasks.Add(node.WriteAsync(off, data).AsTask());
            }

            await Task.WhenAll(tasks);
            await node.WriteZeroesAsync(30000, 10000);
            Array.Clear(expected, 30000, 10000);
            var back = new byte[777];
            await node.ReadAsync(5000, back);
            Assert.Equal(expected.AsSpan(5000, 777).ToArray(), back);
        }

        Assert.Equal(expected, File.ReadAllBytes(f));
    }

    [Fact]
    public async Task A_filter_over_a_file_grows_like_the_file()
    {
        using var dir = new TempDir();
        string f = dir.PatternFile("a.img", 4096);
        var (g, node) = await OpenAsync(f, new BlockdevOptionsBlkdebug { Image = null!, Align = 512 });
        await using (g)
        {
            // What a format over the filter does when it allocates past the end of its file.
            await node.WriteAsync(8192 + 100, new byte[] { 1, 2, 3 });
            Assert.Equal(8192 + 512, node.Length);
            Assert.True(await node.GetAllocatedFileSizeAsync() > 0);
        }

        var bytes = File.ReadAllBytes(f);
        Assert.Equal(8192 + 512, bytes.Length);
        Assert.Equal(new byte[] { 1, 2, 3 }, bytes.AsSpan(8192 + 100, 3).ToArray());
    }

    private static int CountOf(string text, string what)
    {
        int n = 0;
        for (int i = text.IndexOf(what, StringComparison.Ordinal); i >= 0; i = text.IndexOf(what, i + 1, StringComparison.Ordinal))
            n++;
        return n;
    }
}
