using SharpBlock.Graph;
using SharpBlock.Nbd.Client;

namespace SharpBlock.Cli;

/// <summary>
/// Graphs of the sharpblock executable: the library's drivers plus those that live in other projects (nbd),
/// so that img opens every image the daemon can. They all share the default registry, where a program (or a
/// test) may register more formats.
/// </summary>
internal static class BlockGraphs
{
    static BlockGraphs() => NbdClientDriver.Register(BlockDriverRegistry.Default);

    public static BlockGraph Create() => new(BlockDriverRegistry.Default);
}
