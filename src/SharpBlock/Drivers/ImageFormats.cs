using SharpBlock.Errors;
using SharpBlock.Schema;

namespace SharpBlock.Drivers;

/// <summary>Creating new images and recognising existing ones, for jobs and tools that make target images.</summary>
public static class ImageFormats
{
    /// <summary>Creates an empty image of the given format and virtual size (the file is replaced if it exists).</summary>
    public static async ValueTask CreateAsync(BlockdevDriver format, string path, long size, string? backingFile = null, string? backingFormat = null)
    {
        switch (format)
        {
            case BlockdevDriver.Raw:
                if (backingFile != null)
                    throw new BlockException(Errno.EINVAL, "Format 'raw' does not support backing files");
                await Format.Raw.RawCreator.CreateAsync(path, size).ConfigureAwait(false);
                return;
            case BlockdevDriver.Qcow2:
                await Format.Qcow2.Qcow2Creator.CreateAsync(path, new Format.Qcow2.Qcow2CreateOptions
                {
                    Size = size,
                    BackingFile = backingFile,
                    BackingFormat = backingFile != null ? backingFormat : null,
                }).ConfigureAwait(false);
                return;
            default:
                throw new BlockException(Errno.EOPNOTSUPP, $"Cannot create images of format '{format.ToWire()}'");
        }
    }

    /// <summary>Recognises an image by its magic; anything unrecognised is raw.</summary>
    public static async ValueTask<BlockdevDriver> ProbeAsync(string path, CancellationToken cancellationToken = default)
    {
        var magic = new byte[4];
        int n;
        try
        {
            using var h = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            n = await RandomAccess.ReadAsync(h, magic, 0, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            var e = BlockException.ErrnoOf(ex);
            throw new BlockException(e, $"Could not open '{path}': {BlockException.Describe(e)}", ex);
        }

        return Recognise(magic.AsSpan(0, n));
    }

    /// <summary>Recognises an image a protocol node serves (an NBD export), by its first bytes.</summary>
    public static async ValueTask<BlockdevDriver> ProbeAsync(Graph.BlockNode node, CancellationToken cancellationToken = default)
    {
        var magic = new byte[(int)Math.Min(4, node.Length)];
        await node.ReadAsync(0, magic, cancellationToken).ConfigureAwait(false);
        return Recognise(magic);
    }

    private static BlockdevDriver Recognise(ReadOnlySpan<byte> magic) =>
        magic is [(byte)'Q', (byte)'F', (byte)'I', 0xfb] ? BlockdevDriver.Qcow2 : BlockdevDriver.Raw;

    /// <summary>An image format by its name, as -f takes it; only the formats img can open over a file.</summary>
    public static BlockdevDriver ParseFormat(string format)
    {
        if (format is not ("qcow2" or "raw") || !QapiEnums.TryParse(format, out BlockdevDriver driver))
            throw new BlockException(Errno.EINVAL, $"Unknown file format '{format}'");
        return driver;
    }

    /// <summary>The blockdev options that open a format over a file, as blockdev-add would take them.</summary>
    public static BlockdevOptions FileOptions(BlockdevDriver format, string path) =>
        FormatOptions(format, new BlockdevRef { Definition = new BlockdevOptions { Driver = BlockdevDriver.File, File = new BlockdevOptionsFile { Filename = path } } });

    /// <summary>The blockdev options that open a format over a given file child (a definition or a node's name).</summary>
    public static BlockdevOptions FormatOptions(BlockdevDriver format, BlockdevRef file)
    {
        var o = new BlockdevOptions { Driver = format };
        switch (format)
        {
            case BlockdevDriver.Raw:
                o.Raw = new BlockdevOptionsGenericFormat { File = file };
                break;
            case BlockdevDriver.Qcow2:
                o.Qcow2 = new BlockdevOptionsQcow2 { File = file };
                break;
            default:
                throw new BlockException(Errno.EOPNOTSUPP, $"Driver '{format.ToWire()}' is not supported");
        }

        return o;
    }
}
