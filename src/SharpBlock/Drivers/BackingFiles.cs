using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Drivers;

/// <summary>
/// Opening the image a COW format names as its backing file, the same way for every such format: the name
/// resolved against the image's own directory, the recorded format or a probe, read-only.
/// </summary>
public static class BackingFiles
{
    /// <summary>A relative backing name is relative to the directory of the image that names it.</summary>
    public static string Resolve(string imagePath, string backing)
    {
        if (Path.IsPathRooted(backing))
            return backing;
        string? dir = Path.GetDirectoryName(imagePath);
        return string.IsNullOrEmpty(dir) ? backing : Path.Combine(dir, backing);
    }

    /// <summary>Options that open a backing image read-only with the given format over a file node.</summary>
    public static BlockdevOptions Options(string path, string format) => ImageFormats.ImageOptions(path, format, readOnly: true);

    /// <summary>
    /// Opens the backing file an image records (name and, when recorded, format) as a child of the node being
    /// opened; null when the image names none. Options given at blockdev-add (backing: ...) come first.
    /// </summary>
    public static async ValueTask<BlockNode?> OpenAsync(BlockOpenContext context, BlockdevRef? given, string imagePath, string? recordedName, string? recordedFormat,
        CancellationToken cancellationToken)
    {
        if (given is { } b)
            return b.Reference is "" ? null : await context.OpenChildAsync(b, cancellationToken).ConfigureAwait(false);
        if (recordedName is not { } name)
            return null;
        string path = Resolve(imagePath, name);
        string fmt = recordedFormat ?? await ImageFormats.ProbeNameAsync(path, cancellationToken, context.Graph.Drivers).ConfigureAwait(false);
        return await context.OpenChildAsync(new BlockdevRef { Definition = Options(path, fmt) }, cancellationToken).ConfigureAwait(false);
    }
}
