using SharpBlock.Drivers.Filter.Quorum;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;
using SharpBlock.Testing;

namespace SharpBlock.Tests.Drivers.Filter.Quorum;

public class QuorumTests
{
    private const int Size = 64 << 10;

    private static BlockdevRef FileRef(string path) => new()
    {
        Definition = new BlockdevOptions { Driver = BlockdevDriver.File, File = new BlockdevOptionsFile { Filename = path } },
    };

    /// <summary>A file child, or a blkdebug filter over the file when rules are given.</summary>
    private static BlockdevRef Child(string path, string name, params BlkdebugInjectErrorOptions[] rules) => rules.Length == 0
        ? new BlockdevRef { Definition = new BlockdevOptions { Driver = BlockdevDriver.File, NodeName = name, File = new BlockdevOptionsFile { Filename = path } } }
        : new BlockdevRef
        {
            Definition = new BlockdevOptions
            {
                Driver = BlockdevDriver.Blkdebug,
                NodeName = name,
                Blkdebug = new BlockdevOptionsBlkdebug { Image = FileRef(path), InjectError = [.. rules] },
            },
        };

    private static BlockdevOptions Quorum(int threshold, bool? blkverify, params BlockdevRef[] children) => new()
    {
        Driver = BlockdevDriver.Quorum,
        NodeName = "q",
        Quorum = new BlockdevOptionsQuorum { Children = [.. children], VoteThreshold = threshold, Blkverify = blkverify },
    };

    private sealed class Events
    {
        public readonly List<IQapiEvent> All = [];

        public Events(BlockGraph g) => g.Events.Raised += e => { lock (All) All.Add(e); };

        public List<QuorumReportBadEvent> Bad() { lock (All) return [.. All.OfType<QuorumReportBadEvent>()]; }

        public List<QuorumFailureEvent> Failures() { lock (All) return [.. All.OfType<QuorumFailureEvent>()]; }
    }

    private static BlkdebugInjectErrorOptions Fail(BlkdebugEvent e, int errno = 5) => new() { Event = e, Errno = errno, Immediately = true };

    [Fact]
    public async Task Agreeing_children_read_back_without_events()
    {
        using var dir = new TempDir();
        string[] f = [dir.PatternFile("a", Size), dir.PatternFile("b", Size), dir.PatternFile("c", Size)];
        await using var g = new BlockGraph();
        var ev = new Events(g);
        var q = (QuorumNode)await g.AddAsync(Quorum(2, null, Child(f[0], "c0"), Child(f[1], "c1"), Child(f[2], "c2")));
        var buf = new byte[8192];
        await q.ReadAsync(4096, buf);
        Assert.Equal(File.ReadAllBytes(f[0]).AsSpan(4096, 8192).ToArray(), buf);
        Assert.Equal(Size, q.Length);
        Assert.Equal(["children.0", "children.1", "children.2"], q.Children.Select(c => c.Name));
        Assert.All(q.Children, c => Assert.Equal(ChildRole.Children, c.Role));
        Assert.Empty(ev.All);
    }

    [Fact]
    public async Task The_majority_wins_and_the_odd_child_is_reported_without_an_error()
    {
        using var dir = new TempDir();
        string[] f = [dir.PatternFile("a", Size), dir.PatternFile("b", Size, seed: 7), dir.PatternFile("c", Size)];
        await using var g = new BlockGraph();
        var ev = new Events(g);
        var q = await g.AddAsync(Quorum(2, null, Child(f[0], "c0"), Child(f[1], "c1"), Child(f[2], "c2")));
        var buf = new byte[1024];
        await q.ReadAsync(1536, buf);
        Assert.Equal(File.ReadAllBytes(f[0]).AsSpan(1536, 1024).ToArray(), buf);
        var bad = Assert.Single(ev.Bad());
        Assert.Equal("c1", bad.NodeName);
        Assert.Null(bad.Error);
        // 1536+1024 covers sectors 3 and 4.
        Assert.Equal(3, bad.SectorNum);
        Assert.Equal(2, bad.SectorsCount);
        await q.ReadAsync(1100, new byte[100]);
        Assert.Equal((2L, 1L), (ev.Bad()[1].SectorNum, ev.Bad()[1].SectorsCount));
        Assert.Empty(ev.Failures());
    }

    [Fact]
    public async Task A_failing_child_is_reported_with_its_error_and_the_others_answer()
    {
        using var dir = new TempDir();
        string[] f = [dir.PatternFile("a", Size), dir.PatternFile("b", Size), dir.PatternFile("c", Size)];
        await using var g = new BlockGraph();
        var ev = new Events(g);
        var q = await g.AddAsync(Quorum(2, null, Child(f[0], "c0", Fail(BlkdebugEvent.ReadAio)), Child(f[1], "c1"), Child(f[2], "c2")));
        var buf = new byte[4096];
        await q.ReadAsync(0, buf);
        Assert.Equal(File.ReadAllBytes(f[1]).AsSpan(0, 4096).ToArray(), buf);
        var bad = Assert.Single(ev.Bad());
        Assert.Equal("c0", bad.NodeName);
        Assert.Equal("Input/output error", bad.Error);
        Assert.Equal((0L, 8L), (bad.SectorNum, bad.SectorsCount));
    }

    [Fact]
    public async Task Too_many_failures_raise_QUORUM_FAILURE_and_return_the_voted_error()
    {
        using var dir = new TempDir();
        string[] f = [dir.PatternFile("a", Size), dir.PatternFile("b", Size), dir.PatternFile("c", Size)];
        await using var g = new BlockGraph();
        var ev = new Events(g);
        var q = await g.AddAsync(Quorum(2, null,
            Child(f[0], "c0", Fail(BlkdebugEvent.ReadAio, 28)), Child(f[1], "c1", Fail(BlkdebugEvent.ReadAio, 28)), Child(f[2], "c2")));
        var ex = await Assert.ThrowsAsync<BlockException>(async () => await q.ReadAsync(8192, new byte[512]));
        Assert.Equal(Errno.ENOSPC, ex.Errno);
        var fail = Assert.Single(ev.Failures());
        Assert.Equal("q", fail.Reference);
        Assert.Equal((16L, 1L), (fail.SectorNum, fail.SectorsCount));
        Assert.Equal(["c0", "c1"], ev.Bad().Select(b => b.NodeName));
        Assert.All(ev.Bad(), b => Assert.Equal("No space left on device", b.Error));
    }

    [Fact]
    public async Task Three_different_children_have_no_quorum_and_fail_with_EIO()
    {
        using var dir = new TempDir();
        string[] f = [dir.PatternFile("a", Size, 1), dir.PatternFile("b", Size, 2), dir.PatternFile("c", Size, 3)];
        await using var g = new BlockGraph();
        var ev = new Events(g);
        var q = await g.AddAsync(Quorum(2, null, Child(f[0], "c0"), Child(f[1], "c1"), Child(f[2], "c2")));
        var ex = await Assert.ThrowsAsync<BlockException>(async () => await q.ReadAsync(0, new byte[512]));
        Assert.Equal(Errno.EIO, ex.Errno);
        Assert.Single(ev.Failures());
        Assert.Empty(ev.Bad());
    }

    [Fact]
    public async Task Writes_reach_every_child_and_succeed_with_threshold_successes()
    {
        using var dir = new TempDir();
        string[] f = [dir.PatternFile("a", Size), dir.PatternFile("b", Size), dir.PatternFile("c", Size)];
        await using var g = new BlockGraph();
        var ev = new Events(g);
        var q = await g.AddAsync(Quorum(2, null, Child(f[0], "c0"), Child(f[1], "c1", Fail(BlkdebugEvent.WriteAio)), Child(f[2], "c2")));
        var data = Enumerable.Repeat((byte)0x5a, 4096).ToArray();
        byte[] before = File.ReadAllBytes(f[1]);
        await q.WriteAsync(4096, data);
        await q.FlushAsync();
        Assert.Equal(data, File.ReadAllBytes(f[0]).AsSpan(4096, 4096).ToArray());
        Assert.Equal(data, File.ReadAllBytes(f[2]).AsSpan(4096, 4096).ToArray());
        Assert.Equal(before, File.ReadAllBytes(f[1]));
        // The rule fails the child's flush too; a flush names no sectors.
        var bad = ev.Bad();
        Assert.Equal(2, bad.Count);
        Assert.Equal(("c1", "Input/output error", 8L, 8L), (bad[0].NodeName, bad[0].Error, bad[0].SectorNum, bad[0].SectorsCount));
        Assert.Equal(("c1", "Input/output error", 0L, 0L), (bad[1].NodeName, bad[1].Error, bad[1].SectorNum, bad[1].SectorsCount));

        // Its rule stays armed (no other event re-armed the filter), so it fails reads too; the others answer.
        var buf = new byte[4096];
        await q.ReadAsync(4096, buf);
        Assert.Equal(data, buf);
        Assert.Equal(3, ev.Bad().Count);
        Assert.Equal("Input/output error", ev.Bad()[2].Error);
    }

    [Fact]
    public async Task A_write_without_threshold_successes_fails()
    {
        using var dir = new TempDir();
        string[] f = [dir.PatternFile("a", Size), dir.PatternFile("b", Size), dir.PatternFile("c", Size)];
        await using var g = new BlockGraph();
        var ev = new Events(g);
        var q = await g.AddAsync(Quorum(3, null, Child(f[0], "c0"), Child(f[1], "c1", Fail(BlkdebugEvent.WriteAio, 28)), Child(f[2], "c2")));
        var ex = await Assert.ThrowsAsync<BlockException>(async () => await q.WriteAsync(0, new byte[512]));
        Assert.Equal(Errno.ENOSPC, ex.Errno);
        Assert.Single(ev.Failures());
    }

    [Fact]
    public async Task Blkverify_mode_fails_a_read_naming_the_first_differing_sector()
    {
        using var dir = new TempDir();
        string a = dir.PatternFile("a", Size);
        string b = dir.File("b");
        byte[] bytes = File.ReadAllBytes(a);
        bytes[5 * 512 + 17] ^= 0xff;
        File.WriteAllBytes(b, bytes);
        await using var g = new BlockGraph();
        var q = await g.AddAsync(Quorum(2, true, Child(a, "c0"), Child(b, "c1")));
        await q.ReadAsync(0, new byte[2048]);
        var ex = await Assert.ThrowsAsync<BlockException>(async () => await q.ReadAsync(1024, new byte[8192]));
        Assert.Equal(Errno.EIO, ex.Errno);
        Assert.Equal("quorum: sector_num=2 nb_sectors=16 contents mismatch in sector 5", ex.Message);
    }

    [Theory]
    [InlineData(1, 1, null, "Number of provided children must be greater than 1")]
    [InlineData(2, 0, null, "Parameter 'vote-threshold' expects value >= 1")]
    [InlineData(2, 3, null, "threshold may not exceed children count")]
    [InlineData(3, 2, true, "blkverify mode is set by setting blkverify=on and using two files with vote_threshold=2")]
    [InlineData(2, 1, true, "blkverify mode is set by setting blkverify=on and using two files with vote_threshold=2")]
    public async Task Bad_options_are_refused_in_QEMUs_words(int children, int threshold, bool? blkverify, string message)
    {
        using var dir = new TempDir();
        var refs = Enumerable.Range(0, children).Select(i => Child(dir.PatternFile("f" + i, Size), "c" + i)).ToArray();
        await using var g = new BlockGraph();
        var ex = await Assert.ThrowsAsync<BlockException>(async () => await g.AddAsync(Quorum(threshold, blkverify, refs)));
        Assert.Equal(message, ex.Message);
    }

    [Fact]
    public async Task Children_of_different_sizes_are_refused()
    {
        using var dir = new TempDir();
        await using var g = new BlockGraph();
        var ex = await Assert.ThrowsAsync<BlockException>(async () =>
            await g.AddAsync(Quorum(1, null, Child(dir.PatternFile("a", Size), "c0"), Child(dir.PatternFile("b", 2 * Size), "c1"))));
        Assert.Equal(Errno.EIO, ex.Errno);
    }

    [Fact]
    public void Ties_go_to_the_version_whose_first_voter_comes_last()
    {
        // Children 0 and 2 say A, 1 and 3 say B: QEMU returns B.
        byte[] keys = [1, 2, 1, 2];
        Span<int> version = stackalloc int[4];
        int w = QuorumVote.Winner(keys, 1, [true, true, true, true], version, out int votes);
        Assert.Equal((1, 2), (w, votes));
        Assert.Equal([0, 1, 0, 1], version.ToArray());
        // A clear majority wins wherever it sits; non-voters are skipped.
        keys = [3, 4, 4, 4, 9];
        w = QuorumVote.Winner(keys, 1, [true, true, true, true, false], version = new int[5], out votes);
        Assert.Equal((1, 3), (w, votes));
        Assert.Equal(-1, version[4]);
    }
}
