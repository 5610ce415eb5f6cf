using SharpBlock.Schema;

namespace SharpBlock.Graph;

/// <summary>Opens one node of a driver from its options; children are opened through the context.</summary>
public delegate ValueTask<BlockNode> BlockDriverOpener(BlockOpenContext context, CancellationToken cancellationToken);

/// <summary>The drivers this build knows, by their BlockdevDriver name.</summary>
public sealed class BlockDriverRegistry
{
    private readonly Dictionary<BlockdevDriver, BlockDriverOpener> _drivers = [];

    public void Register(BlockdevDriver driver, BlockDriverOpener opener) => _drivers[driver] = opener;

    public bool TryGet(BlockdevDriver driver, out BlockDriverOpener opener) => _drivers.TryGetValue(driver, out opener!);

    public bool IsSupported(BlockdevDriver driver) => _drivers.ContainsKey(driver);

    /// <summary>The registry with every driver the library implements.</summary>
    public static BlockDriverRegistry CreateDefault()
    {
        var r = new BlockDriverRegistry();
        Drivers.BuiltinDrivers.RegisterAll(r);
        return r;
    }
}
