namespace SharpBlock.Fuzz;

/// <summary>
/// One fuzz target: a name, where its seeds live, and the entry point every driver uses (AFL++ through
/// SharpFuzz, the in-process replay of the test suite, the soak run). The entry point swallows the
/// library's typed errors, which are how hostile input is meant to end; anything else that escapes it is
/// a finding.
/// </summary>
public sealed class FuzzTarget(string name, string summary, Func<byte[], FuzzContext, Task> run)
{
    public string Name { get; } = name;

    public string Summary { get; } = summary;

    /// <summary>The seed folder, beside the binary (the project copies corpus/ to its output).</summary>
    public string CorpusFolder => Path.Combine(AppContext.BaseDirectory, "corpus", Name);

    /// <summary>Runs one input to completion; AFL's own timeout is the hang detector here.</summary>
    public void Run(byte[] input) => run(input, new FuzzContext()).GetAwaiter().GetResult();

    /// <summary>
    /// Runs one input on the thread pool with a time bound, for drivers that have no AFL to notice hangs.
    /// A hang's memory nodes are revoked, so a loop that does I/O ends instead of spinning on.
    /// </summary>
    public void RunBounded(byte[] input, TimeSpan bound)
    {
        var context = new FuzzContext();
        var task = Task.Run(() => run(input, context));
        if (!task.Wait(bound))
        {
            context.Abandon();
            throw new FuzzHangException($"{Name}: an input of {input.Length} bytes ran longer than {bound.TotalSeconds:0.#} s");
        }

        task.GetAwaiter().GetResult();
    }

    public IEnumerable<string> Seeds() =>
        Directory.Exists(CorpusFolder) ? Directory.EnumerateFiles(CorpusFolder).Order(StringComparer.Ordinal) : [];
}
