using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Drivers;

/// <summary>
/// Opening the image a COW format names as its backing file, the same way for every such format: the name
/// resolved against the image's own directory, the recorded format or a probe, read-only.
/// </summary>
public static class BackingFiles
{
    /// <summary>
    /// A relative backing name is relative to the directory of the image that names it; for an image named by a
    /// URL that is the URL up to its last '/', as QEMU combines them (a backing name with a protocol prefix of
    /// its own, or an absolute path, stands as it is).
    /// </summary>
    public static string Resolve(string imagePath, string backing)
    {
        if (Path.IsPathRooted(backing) || HasProtocol(backing))
            return backing;
        if (HasProtocol(imagePath))
        {
            int slash = imagePath.LastIndexOf('/');
            int authority = imagePath.IndexOf("://", StringComparison.Ordinal) + 3;
            return slash >= authority ? imagePath[..(slash + 1)] + backing : imagePath + "/" + backing;
        }

        string? dir = Path.GetDirectoryName(imagePath);
        return string.IsNullOrEmpty(dir) ? backing : Path.Combine(dir, backing);
    }

    /// <summary>"scheme://..." (an http or nbd URL), as opposed to a path.</summary>
    private static bool HasProtocol(string name)
    {
        int sep = name.IndexOf("://", StringComparison.Ordinal);
        if (sep <= 0)
            return false;
        foreach (char c in name.AsSpan(0, sep))
        {
            if (!char.IsAsciiLetterOrDigit(c) && c is not ('+' or '-' or '.'))
                return false;
        }

        return true;
    }

    /// <summary>Options that open a backing image read-only with the given format over a file node.</summary>
    public static BlockdevOptions Options(string path, string format) => ImageFormats.ImageOptions(path, format, readOnly: true);

    /// <summary>
    /// Opens the backing file an image records (name and, when recorded, format) as a child of the node being
    /// opened; null when the image names none. Options given at blockdev-add (backing: ...) come first.
    /// </summary>
    public static async ValueTask<BlockNode?> OpenAsync(BlockOpenContext context, BlockdevRefOrNull? given, string imagePath, string? recordedName, string? recordedFormat,
        CancellationToken cancellationToken)
    {
        try
        {
            return await OpenOrNullAsync(context, given, imagePath, recordedName, recordedFormat, cancellationToken).ConfigureAwait(false);
        }
        catch (BlockException ex) when (ex is not (EncryptionKeyRequiredException or ImageCorruptException))
        {
            // QEMU's words: the overlay names the failure as its backing file's, and the tool then names the overlay.
            throw new BlockException(ex.Errno, "Could not open backing file: " + ex.Message, ex);
        }
    }

    private static async ValueTask<BlockNode?> OpenOrNullAsync(BlockOpenContext context, BlockdevRefOrNull? given, string imagePath, string? recordedName,
        string? recordedFormat, CancellationToken cancellationToken)
    {
        if (given is { } b)
            return b.IsNone ? null : await context.OpenChildAsync(b.ToRef(), cancellationToken).ConfigureAwait(false);
        if (recordedName is not { } name)
            return null;
        string path = Resolve(imagePath, name);
        if (HasProtocol(path) && context.Graph.Drivers.ParseProtocolFilename(path) is { } protocol)
            return await OpenOverProtocolAsync(context, protocol, recordedFormat, cancellationToken).ConfigureAwait(false);
        string fmt = recordedFormat ?? await ImageFormats.ProbeNameAsync(path, cancellationToken, context.Graph.Drivers).ConfigureAwait(false);
        return await context.OpenChildAsync(new BlockdevRef { Definition = Options(path, fmt) }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// A backing image a protocol serves (an http URL): the protocol node first, the format probed through it
    /// when the image records none, then the format over that node, so the probe costs no second connection.
    /// </summary>
    private static async ValueTask<BlockNode> OpenOverProtocolAsync(BlockOpenContext context, BlockdevOptions protocol, string? recordedFormat,
        CancellationToken cancellationToken)
    {
        var registry = context.Graph.Drivers;
        protocol.ReadOnly = true;
        var file = await context.OpenChildAsync(new BlockdevRef { Definition = protocol }, cancellationToken).ConfigureAwait(false);
        var format = recordedFormat != null
            ? ImageFormats.ParseFormat(recordedFormat, registry)
            : await ImageFormats.ProbeAsync(file, cancellationToken, registry).ConfigureAwait(false);
        var options = ImageFormats.FormatOptions(format, new BlockdevRef { Reference = file.NodeName }, registry);
        options.ReadOnly = true;
        return await context.OpenChildAsync(new BlockdevRef { Definition = options }, cancellationToken).ConfigureAwait(false);
    }
}
