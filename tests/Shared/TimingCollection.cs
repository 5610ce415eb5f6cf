namespace SharpBlock.Testing;

/// <summary>
/// Tests that measure rates run alone: another test class hammering the thread pool at the same time would
/// delay the timers they measure and turn a correct limit into a failed assertion.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TimingCollection
{
    public const string Name = "Timing-sensitive";
}
