using SharpBlock.Schema;

namespace SharpBlock.Graph;

/// <summary>Opens one node of a driver from its options; children are opened through the context.</summary>
public delegate ValueTask<BlockNode> BlockDriverOpener(BlockOpenContext context, CancellationToken cancellationToken);

/// <summary>
/// Options for a protocol node named by a filename of the driver's own syntax (nbd://HOST/NAME); null when the
/// name is not of that syntax. A name of the syntax that is malformed throws, in the driver's words.
/// </summary>
public delegate BlockdevOptions? ProtocolFilenameParser(string filename);

/// <summary>The drivers this build knows, by their BlockdevDriver name.</summary>
public sealed class BlockDriverRegistry
{
    private readonly Dictionary<BlockdevDriver, BlockDriverOpener> _drivers = [];
    private readonly List<ProtocolFilenameParser> _filenameParsers = [];

    public void Register(BlockdevDriver driver, BlockDriverOpener opener) => _drivers[driver] = opener;

    /// <summary>
    /// Lets tools that open images by name (img) open this protocol's names too, without knowing the protocol.
    /// Registering the same parser again changes nothing.
    /// </summary>
    public void RegisterFilenameProtocol(ProtocolFilenameParser parser)
    {
        if (!_filenameParsers.Contains(parser))
            _filenameParsers.Add(parser);
    }

    /// <summary>The protocol node a filename names, or null for a plain file name.</summary>
    public BlockdevOptions? ParseProtocolFilename(string filename)
    {
        foreach (var parse in _filenameParsers)
        {
            if (parse(filename) is { } options)
                return options;
        }

        return null;
    }

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
