namespace SharpBlock.Tests.Fuzz;

/// <summary>
/// The per-format fuzz replays run one class at a time: each case has a hang deadline, and a dozen CPU-bound
/// replays sharing two cores at once would make a slow case look like a hang.
/// </summary>
[CollectionDefinition(Name)]
public sealed class FuzzCollection
{
    public const string Name = "fuzz replays";
}
