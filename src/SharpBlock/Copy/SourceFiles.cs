using SharpBlock.Drivers.Protocol.File;
using SharpBlock.Graph;

namespace SharpBlock.Copy;

/// <summary>
/// Whether a path names one of the files a node reads (its image, backing chain, data files): a copy must not
/// create its target over its own source. qemu-img finds this through its read lock; readers here share
/// everything, so the question is asked directly.
/// </summary>
public static class SourceFiles
{
    public static bool Includes(BlockNode node, string path)
    {
        if (node is FileNode f && SameFile(f.Path, path))
            return true;
        foreach (var child in node.Children)
        {
            if (Includes(child.Node, path))
                return true;
        }

        return false;
    }

    private static bool SameFile(string a, string b) => string.Equals(RealPath(a), RealPath(b), StringComparison.Ordinal);

    private static string RealPath(string path)
    {
        var full = Path.GetFullPath(path);
        return File.Exists(full) && new FileInfo(full).ResolveLinkTarget(returnFinalTarget: true) is { } target ? target.FullName : full;
    }
}
