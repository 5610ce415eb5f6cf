using SharpBlock.Drivers;
using SharpBlock.Drivers.Format.Qcow2;
using SharpBlock.Drivers.Protocol.Memory;
using SharpBlock.Fuzz;
using SharpBlock.Graph;

namespace SharpBlock.Tests.Fuzz;

/// <summary>
/// The short run of every fuzz target that the suite does on each build, without AFL: each seed, then a
/// fixed set of deterministic mutations of them, through the same entry point AFL drives. The entry point
/// swallows the library's typed errors, so anything that escapes it (IndexOutOfRange, Overflow, a
/// NullReference...) fails the case, and so does a case over its time bound. A failure names the target,
/// the seed and the case number, which reproduce it exactly.
/// </summary>
public class FuzzReplayTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Cases that hit a finding still open in code this suite does not own (the qcow2 allocator): they
    /// would spin until revoked, so they are skipped here and kept as a skipped regression test below.
    /// </summary>
    private static readonly HashSet<(string Target, int Case)> KnownOpen = [];

    [Theory]
    [InlineData("qcow2", 1500)]
    [InlineData("nbd", 1500)]
    [InlineData("qmp", 4000)]
    public void Seeds_and_mutations_end_in_typed_errors(string name, int mutations)
    {
        var target = FuzzTargets.Find(name)!;
        var seeds = target.Seeds().Select(File.ReadAllBytes).ToArray();
        Assert.NotEmpty(seeds);
        foreach (var (seed, i) in seeds.Select((s, i) => (s, i)))
            RunCase(target, seed, $"seed {i}");

        bool image = name == "qcow2";
        for (int c = 0; c < mutations; c++)
        {
            if (KnownOpen.Contains((name, c)))
                continue;
            var rng = new Random(c);
            var input = Mutator.Mutate(seeds[c % seeds.Length], rng, headerBytes: image ? 512 : 64, resize: !image);
            RunCase(target, input, $"case {c} (seed {c % seeds.Length})");
        }
    }

    private static void RunCase(FuzzTarget target, byte[] input, string what)
    {
        try
        {
            target.RunBounded(input, Bound);
        }
        catch (Exception ex)
        {
            Assert.Fail($"{target.Name} {what}: {ex.GetType().Name}: {ex}");
        }
    }

    /// <summary>
    /// Escaped lone surrogates parse as JSON but fail when read (InvalidOperationException from
    /// JsonProperty.Name or GetString, deep in an argument reader); QmpInputRules now rejects them as a
    /// parse error. Found by the in-process replay of the qmp target, case 13.
    /// </summary>
    [Theory]
    [InlineData("lone-surrogate-member-name.json")]
    [InlineData("lone-surrogate-string-value.json")]
    public void Qmp_lone_surrogate_escape_is_a_parse_error(string file)
    {
        byte[] input = File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "regressions", "qmp", file));
        FuzzTargets.Find("qmp")!.RunBounded(input, Bound);
        Assert.NotNull(SharpBlock.Qmp.Protocol.QmpInputRules.FindProblem(new System.Buffers.ReadOnlySequence<byte>(input)));
    }

    /// <summary>
    /// A refcount table whose first entry is zero (no refcount block for the clusters that hold the
    /// header and tables): the first allocating write loops in AllocateClustersLockedAsync /
    /// CreateRefBlockLockedAsync, which wrote a self-describing block over the header again and again.
    /// Found by AFL on the qcow2 target (input: bench/fuzz/findings/); the allocation is now refused as
    /// damage before anything is written.
    /// </summary>
    [Fact]
    public void Qcow2_zero_refcount_table_entry_does_not_loop_the_allocator()
    {
        string path = Path.Combine(AppContext.BaseDirectory, "findings", "qcow2-allocator-loop-refcount-entry-zero.qcow2");
        FuzzTargets.Find("qcow2")!.RunBounded(File.ReadAllBytes(path), Bound);
    }

    /// <summary>The corpus is only worth mutating if the driver takes every seed as a healthy image.</summary>
    [Fact]
    public async Task Every_qcow2_seed_opens_and_checks_clean()
    {
        foreach (string path in FuzzTargets.Find("qcow2")!.Seeds())
        {
            var file = new MemoryNode(File.ReadAllBytes(path), NodeSettings.Default with { ReadOnly = true });
            await using var _ = file;
            var node = await Qcow2Node.OpenAsync(file, NodeSettings.Default with { ReadOnly = true });
            await using var __ = node;
            var r = await node.CheckAsync(ImageCheckMode.None, null);
            Assert.True(r.Corruptions == 0 && r.Leaks == 0 && r.CheckErrors == 0, $"{Path.GetFileName(path)}: {r.Corruptions} corruptions, {r.Leaks} leaks");
        }
    }
}
