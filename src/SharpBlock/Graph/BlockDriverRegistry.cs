using SharpBlock.Drivers;
using SharpBlock.Schema;

namespace SharpBlock.Graph;

/// <summary>Opens one node of a driver from its options; children are opened through the context.</summary>
public delegate ValueTask<BlockNode> BlockDriverOpener(BlockOpenContext context, CancellationToken cancellationToken);

/// <summary>
/// Options for a protocol node named by a filename of the driver's own syntax (nbd://HOST/NAME); null when the
/// name is not of that syntax. A name of the syntax that is malformed throws, in the driver's words.
/// </summary>
public delegate BlockdevOptions? ProtocolFilenameParser(string filename);

/// <summary>The drivers this build knows, by their BlockdevDriver name, and the image formats among them.</summary>
public sealed class BlockDriverRegistry
{
    private readonly Dictionary<BlockdevDriver, BlockDriverOpener> _drivers = [];
    private readonly List<BlockFormat> _formats = [];
    private readonly List<ProtocolFilenameParser> _filenameParsers = [];
    private readonly object _lock = new();

    /// <summary>The format a new overlay gets when the client names none (blockdev-snapshot-sync), qcow2 as in QEMU.</summary>
    public BlockdevDriver DefaultOverlayFormat { get; set; } = BlockdevDriver.Qcow2;

    public void Register(BlockdevDriver driver, BlockDriverOpener opener)
    {
        lock (_lock)
            _drivers[driver] = opener;
    }

    /// <summary>Registers an image format: its opener, and its place in probing, creation and option lookup.</summary>
    public void RegisterFormat(BlockFormat format)
    {
        lock (_lock)
        {
            _drivers[format.Driver] = format.OpenAsync;
            _formats.RemoveAll(f => f.Driver == format.Driver);
            _formats.Add(format);
        }
    }

    /// <summary>
    /// Lets tools that open images by name (img) open this protocol's names too, without knowing the protocol.
    /// Registering the same parser again changes nothing.
    /// </summary>
    public void RegisterFilenameProtocol(ProtocolFilenameParser parser)
    {
        lock (_lock)
        {
            if (!_filenameParsers.Contains(parser))
                _filenameParsers.Add(parser);
        }
    }

    /// <summary>The protocol node a filename names, or null for a plain file name.</summary>
    public BlockdevOptions? ParseProtocolFilename(string filename)
    {
        ProtocolFilenameParser[] parsers;
        lock (_lock)
            parsers = [.. _filenameParsers];
        foreach (var parse in parsers)
        {
            if (parse(filename) is { } options)
                return options;
        }

        return null;
    }

    public bool TryGet(BlockdevDriver driver, out BlockDriverOpener opener)
    {
        lock (_lock)
            return _drivers.TryGetValue(driver, out opener!);
    }

    public bool IsSupported(BlockdevDriver driver)
    {
        lock (_lock)
            return _drivers.ContainsKey(driver);
    }

    /// <summary>The registered image formats, in registration order (a snapshot).</summary>
    public IReadOnlyList<BlockFormat> Formats
    {
        get
        {
            lock (_lock)
                return [.. _formats];
        }
    }

    /// <summary>The format with this wire name, or null.</summary>
    public BlockFormat? FindFormat(string name)
    {
        lock (_lock)
        {
            foreach (var f in _formats)
            {
                if (f.Name == name)
                    return f;
            }
        }

        return null;
    }

    /// <summary>The format that claims these first bytes of a file most surely (QEMU's probe); raw when none does.</summary>
    public BlockFormat Probe(ReadOnlySpan<byte> head, string fileName)
    {
        BlockFormat? best = null;
        int bestScore = 0;
        foreach (var f in Formats)
        {
            int score = f.Probe(head, fileName);
            if (score > bestScore)
            {
                best = f;
                bestScore = score;
            }
        }

        return best ?? FindFormat("raw") ?? throw new InvalidOperationException("no raw format registered");
    }

    /// <summary>A registry with every driver the library implements.</summary>
    public static BlockDriverRegistry CreateDefault()
    {
        var r = new BlockDriverRegistry();
        Drivers.BuiltinDrivers.RegisterAll(r);
        return r;
    }

    /// <summary>
    /// The registry graphs use when given none: the library's drivers, plus whatever a program (the CLI, a
    /// test) registers at start-up.
    /// </summary>
    public static BlockDriverRegistry Default { get; } = CreateDefault();
}
