using System.Buffers;
using System.Globalization;
using System.Text.Json;
using SharpBlock.Drivers;
using SharpBlock.Drivers.Format.Raw;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Options;
using SharpBlock.Qmp.Protocol;
using SharpBlock.Qmp.Schema;
using SharpBlock.Schema;

namespace SharpBlock.Cli.Img;

/// <summary>Opening images for img commands, and the output helpers they share.</summary>
internal static partial class ImgImage
{
    /// <summary>
    /// Opens FILE (probing its format when none is given) in a fresh graph; the caller disposes the graph. A
    /// name in a protocol's own syntax (nbd://...) opens that protocol's node and the format over it.
    /// </summary>
    public static async Task<(BlockGraph Graph, BlockNode Node)> OpenAsync(string path, string? format, bool readOnly, BlockdevCacheOptions? cache = null, bool forceShare = false, bool forCheck = false,
        bool noBacking = false)
    {
        var graph = BlockGraphs.Create();
        try
        {
            var options = ImgJsonFilename.Is(path)
                ? await FromJsonAsync(graph, path, format, readOnly).ConfigureAwait(false)
                : graph.Drivers.ParseProtocolFilename(path) is { } protocol
                ? await OverProtocolAsync(graph, protocol, format, readOnly).ConfigureAwait(false)
                : ImageFormats.ImageOptions(path, format ?? await ImageFormats.ProbeNameAsync(path, CancellationToken.None, graph.Drivers).ConfigureAwait(false), readOnly, "img0", graph.Drivers);
            if (cache != null)
                options.Cache = cache;
            if (readOnly && forceShare)
                options.ForceShare = true;
            if (noBacking)
                ImageFormats.Find(options.Driver, graph.Drivers)?.SetBacking(options, new BlockdevRef { Reference = "" });
            var node = await graph.AddAsync(options, NodeSettings.Default with { ForCheck = forCheck }).ConfigureAwait(false);
            if (format == null && !readOnly && node is RawNode raw)
                GuardProbedRaw(raw, path, graph.Drivers);
            return (graph, node);
        }
        catch (BlockException ex)
        {
            await graph.DisposeAsync().ConfigureAwait(false);
            throw ImageOpenException.Wrap(path, ex);
        }
    }

    /// <summary>A raw image opened for writing by a guess: qemu-img's warning, and QEMU's first-sector guard.</summary>
    private static void GuardProbedRaw(RawNode raw, string path, BlockDriverRegistry registry)
    {
        Console.Error.Write(
            $"WARNING: Image format was not specified for '{path}' and probing guessed raw.\n" +
            "         Automatically detecting the format is dangerous for raw images, write operations on block 0 will be restricted.\n" +
            "         Specify the 'raw' format explicitly to remove the restrictions.\n");
        raw.GuardProbedFormat(registry);
    }

    /// <summary>
    /// A json: name: the node it describes; without a driver, the format (-f, or probed) over its "file".
    /// </summary>
    private static async Task<BlockdevOptions> FromJsonAsync(BlockGraph graph, string path, string? format, bool readOnly)
    {
        using var tree = ImgJsonFilename.Parse(path);
        var root = tree.RootElement;
        if (!root.TryGetProperty("driver", out _))
        {
            if (!root.TryGetProperty("file", out var file))
                throw new BlockException(Errno.EINVAL, "A block device must be specified for \"file\"");
            return await OverProtocolAsync(graph, QapiCodec.ReadBlockdevOptions(file, "file", keyval: true), format, readOnly).ConfigureAwait(false);
        }

        var options = QapiCodec.ReadBlockdevOptions(root, "", keyval: true);
        options.ReadOnly = readOnly;
        options.NodeName = "img0";
        return options;
    }

    /// <summary>
    /// The format node's options over a protocol node opened first on its own, so that probing reads through
    /// the one connection the image then uses (a qemu-nbd without -e serves one client at a time).
    /// </summary>
    private static async Task<BlockdevOptions> OverProtocolAsync(BlockGraph graph, BlockdevOptions protocol, string? format, bool readOnly)
    {
        const string fileNode = "img0-file";
        protocol.NodeName = fileNode;
        protocol.ReadOnly = readOnly;
        var file = await graph.AddAsync(protocol).ConfigureAwait(false);
        var driver = format == null
            ? await ImageFormats.ProbeAsync(file).ConfigureAwait(false)
            : ImageFormats.ParseFormat(format);
        var options = ImageFormats.FormatOptions(driver, new BlockdevRef { Reference = fileNode });
        options.ReadOnly = readOnly;
        options.NodeName = "img0";
        return options;
    }

    /// <summary>
    /// -l of convert and measure: shows an internal snapshot instead of the current state. The parameter is
    /// an id or name, or "snapshot.id=ID" / "snapshot.name=NAME" as qemu-img takes it.
    /// </summary>
    public static async Task LoadSnapshotAsync(BlockNode node, string parameter)
    {
        string idOrName = parameter;
        if (parameter.StartsWith("snapshot.", StringComparison.Ordinal))
        {
            var opts = Keyval.Dictionary(parameter);
            idOrName = opts.GetValueOrDefault("snapshot.id") ?? opts.GetValueOrDefault("snapshot.name")
                ?? throw new ImgUsageException($"Invalid snapshot parameter '{parameter}'");
        }

        if (node is not IInternalSnapshots snapshots)
            throw new ImgUsageException($"Failed to load snapshot: Block format '{node.DriverName}' used by device '' does not support temporarily loading internal snapshots");
        try
        {
            await snapshots.LoadInternalSnapshotTemporarilyAsync(idOrName).ConfigureAwait(false);
        }
        catch (BlockException ex)
        {
            throw new ImgUsageException("Failed to load snapshot: " + ex.Message);
        }
    }

    /// <summary>qemu's size_to_str: three significant digits in binary units ("324 KiB", "1.5 MiB").</summary>
    public static string HumanSize(long value)
    {
        string[] suffixes = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        // Divide by 1000/1024 first so 1000..1023 of a unit already move to the next one, as QEMU does.
        double v = value / (1000.0 / 1024.0);
        int i = 0;
        if (v >= 1)
        {
            int exp = (int)Math.Floor(Math.Log2(v)) + 1;
            i = (exp - 1) / 10;
        }

        i = Math.Clamp(i, 0, suffixes.Length - 1);
        double scaled = value / Math.Pow(2, i * 10);
        return FormatG3(scaled) + " " + suffixes[i];
    }

    /// <summary>C's "%0.3g".</summary>
    private static string FormatG3(double d)
    {
        if (d == 0)
            return "0";
        string s = d.ToString("G3", CultureInfo.InvariantCulture);
        if (s.Contains('E', StringComparison.Ordinal))
            s = d.ToString("0", CultureInfo.InvariantCulture);
        return s;
    }

    /// <summary>Re-indents compact QMP JSON the way qemu-img prints it (4 spaces, "key": value).</summary>
    public static string Pretty(ReadOnlyMemory<byte> compact)
    {
        using var doc = JsonDocument.Parse(compact);
        var buf = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buf, new JsonWriterOptions { Indented = true, IndentSize = 4, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
            doc.WriteTo(w);
        return System.Text.Encoding.UTF8.GetString(buf.WrittenSpan);
    }

    public static QmpJsonWriter NewWriter(out ArrayBufferWriter<byte> buffer)
    {
        buffer = new ArrayBufferWriter<byte>();
        return new QmpJsonWriter(buffer);
    }
}
