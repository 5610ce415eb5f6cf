using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Protocol.Vvfat;

/// <summary>blockdev-add of a vvfat node, and qemu-img's "fat:[floppy:][12|16|32:][rw:]DIR" names.</summary>
internal static class VvfatDriver
{
    public static ValueTask<BlockNode> OpenAsync(BlockOpenContext ctx, CancellationToken ct)
    {
        var o = ctx.Options.Vvfat ?? throw new BlockException(Errno.EINVAL, "Missing vvfat options");
        long fatType = o.FatType ?? 0;
        if (fatType is not (0 or 12 or 16 or 32))
            throw new BlockException(Errno.EINVAL, "Valid FAT types are only 12, 16 and 32");
        return ValueTask.FromResult<BlockNode>(VvfatNode.Open(o.Dir, (int)fatType, o.Floppy ?? false, o.Rw ?? false, o.Label, ctx.Settings));
    }

    /// <summary>
    /// The directory is what follows the last colon; the words between say floppy, the FAT width and rw, in
    /// any order, as QEMU reads them.
    /// </summary>
    public static BlockdevOptions? ParseFilename(string filename)
    {
        if (!filename.StartsWith("fat:", StringComparison.Ordinal))
            return null;
        int last = filename.LastIndexOf(':');
        string dir = filename[(last + 1)..];
        string flags = filename[..(last + 1)];
        long? fatType = flags.Contains(":32:", StringComparison.Ordinal) ? 32 : flags.Contains(":16:", StringComparison.Ordinal) ? 16 : flags.Contains(":12:", StringComparison.Ordinal) ? 12 : null;
        return new BlockdevOptions
        {
            Driver = BlockdevDriver.Vvfat,
            Vvfat = new BlockdevOptionsVVFAT
            {
                Dir = dir,
                FatType = fatType,
                Floppy = flags.Contains(":floppy:", StringComparison.Ordinal),
                Rw = flags.Contains(":rw:", StringComparison.Ordinal),
            },
        };
    }
}
