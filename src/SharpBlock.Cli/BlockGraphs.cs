using SharpBlock.Graph;
using SharpBlock.Nbd.Client;

namespace SharpBlock.Cli;

/// <summary>
/// Graphs of the sharpblock executable: the library's drivers plus those that live in other projects (nbd),
/// so that img opens every image the daemon can.
/// </summary>
internal static class BlockGraphs
{
    public static BlockGraph Create()
    {
        var drivers = BlockDriverRegistry.CreateDefault();
        NbdClientDriver.Register(drivers);
        return new BlockGraph(drivers);
    }
}
