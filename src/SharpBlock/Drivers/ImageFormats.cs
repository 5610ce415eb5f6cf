using SharpBlock.Drivers.Protocol.File;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Drivers;

/// <summary>
/// Creating new images and recognising existing ones, for jobs and tools that make target images: a loop over
/// the registered formats, so a new format needs no change here.
/// </summary>
public static class ImageFormats
{
    /// <summary>Creates an empty image of the given format and virtual size (the file is replaced if it exists).</summary>
    public static async ValueTask CreateAsync(BlockdevDriver format, string path, long size, string? backingFile = null, string? backingFormat = null,
        BlockDriverRegistry? registry = null, CancellationToken cancellationToken = default)
    {
        var f = Find(format, registry) ?? throw new BlockException(Errno.EOPNOTSUPP, $"Cannot create images of format '{format.ToWire()}'");
        try
        {
            await f.CreateAsync(path, size, backingFile, backingFile != null ? backingFormat : null, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is (IOException and not BlockException) or UnauthorizedAccessException)
        {
            throw BlockException.ForPath("create", path, ex);
        }
    }

    /// <summary>Recognises an image by its first bytes, as QEMU probes: the surest format wins, raw when none claims it.</summary>
    public static async ValueTask<BlockdevDriver> ProbeAsync(string path, CancellationToken cancellationToken = default, BlockDriverRegistry? registry = null) =>
        (await ProbeFormatAsync(path, registry, cancellationToken).ConfigureAwait(false)).Driver;

    /// <summary>The probed format's name ("qcow2", "raw").</summary>
    public static async ValueTask<string> ProbeNameAsync(string path, CancellationToken cancellationToken = default, BlockDriverRegistry? registry = null) =>
        (await ProbeFormatAsync(path, registry, cancellationToken).ConfigureAwait(false)).Name;

    private static async ValueTask<BlockFormat> ProbeFormatAsync(string path, BlockDriverRegistry? registry, CancellationToken cancellationToken)
    {
        var head = new byte[BlockFormat.ProbeBytes];
        int n;
        try
        {
            using var h = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            n = await RandomAccess.ReadAsync(h, head, 0, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw BlockException.ForPath("open", path, ex);
        }

        return (registry ?? BlockDriverRegistry.Default).Probe(head.AsSpan(0, n), path);
    }

    /// <summary>Recognises an image a protocol node serves (an NBD export), by its first bytes.</summary>
    public static async ValueTask<BlockdevDriver> ProbeAsync(BlockNode node, CancellationToken cancellationToken = default, BlockDriverRegistry? registry = null)
    {
        var head = new byte[(int)Math.Min(BlockFormat.ProbeBytes, node.Length)];
        await node.ReadAsync(0, head, cancellationToken).ConfigureAwait(false);
        return (registry ?? BlockDriverRegistry.Default).Probe(head, node.Filename).Driver;
    }

    /// <summary>An image format by its name, as -f takes it: one of the registered formats.</summary>
    public static BlockdevDriver ParseFormat(string format, BlockDriverRegistry? registry = null) =>
        ((registry ?? BlockDriverRegistry.Default).FindFormat(format) ?? throw new BlockException(Errno.EINVAL, $"Unknown file format '{format}'")).Driver;

    /// <summary>The blockdev options that open a format over a file, as blockdev-add would take them.</summary>
    public static BlockdevOptions FileOptions(BlockdevDriver format, string path, BlockDriverRegistry? registry = null) =>
        // A name in a protocol's own syntax (rbd:pool/image) is that protocol's node, as in qemu-img.
        FormatOptions(format, new BlockdevRef
        {
            Definition = (registry ?? BlockDriverRegistry.Default).ParseProtocolFilename(path)
                ?? HostFileProbe.Options(path),
        }, registry);

    /// <summary>The blockdev options that open a format over a given file child (a definition or a node's name).</summary>
    public static BlockdevOptions FormatOptions(BlockdevDriver format, BlockdevRef file, BlockDriverRegistry? registry = null)
    {
        var f = Find(format, registry) ?? throw new BlockException(Errno.EOPNOTSUPP, $"Driver '{format.ToWire()}' is not supported");
        return f.OptionsOver(file);
    }

    /// <summary>Options that open an image file with the named format, as the image tool and jobs do.</summary>
    public static BlockdevOptions ImageOptions(string path, string format, bool readOnly, string? nodeName = null, BlockDriverRegistry? registry = null)
    {
        // As qemu-img's -f, a file protocol's name opens the file itself, without a format on top.
        if (HostFileProbe.ProtocolOptions(format, path) is { } protocol)
        {
            protocol.ReadOnly = readOnly;
            protocol.NodeName = nodeName;
            return protocol;
        }

        var f = (registry ?? BlockDriverRegistry.Default).FindFormat(format) ?? throw new BlockException(Errno.EINVAL, $"Unknown file format '{format}'");
        var o = FileOptions(f.Driver, path, registry);
        o.ReadOnly = readOnly;
        o.NodeName = nodeName;
        return o;
    }

    /// <summary>The registered format of a driver, or null when the driver is no image format.</summary>
    public static BlockFormat? Find(BlockdevDriver driver, BlockDriverRegistry? registry = null)
    {
        foreach (var f in (registry ?? BlockDriverRegistry.Default).Formats)
        {
            if (f.Driver == driver)
                return f;
        }

        return null;
    }
}
