using SharpBlock.Schema;

namespace SharpBlock.Cli.Img;

/// <summary>The -t/-T cache modes of the img commands, as the -drive cache= shorthands map them.</summary>
internal static class ImgCacheMode
{
    /// <summary>-t of an img command that takes it, or null when not given; qemu-img's wording on a bad one.</summary>
    public static BlockdevCacheOptions? Target(ImgArgs a) =>
        a.Get("-t") is { } t ? Parse(t, $"Invalid cache option: {t}") : null;

    /// <summary>-T (the cache mode of images only read), or null when not given.</summary>
    public static BlockdevCacheOptions? Source(ImgArgs a) =>
        a.Get("-T") is { } t ? Parse(t, $"Invalid source cache option: {t}") : null;

    /// <summary>The options for <paramref name="mode"/>; a mode qemu-img does not know fails with <paramref name="invalid"/>.</summary>
    public static BlockdevCacheOptions Parse(string mode, string invalid) => mode switch
    {
        "none" or "off" => new BlockdevCacheOptions { Direct = true, Writeback = true },
        "writeback" => new BlockdevCacheOptions { Direct = false, Writeback = true },
        "writethrough" => new BlockdevCacheOptions { Direct = false, Writeback = false },
        "directsync" => new BlockdevCacheOptions { Direct = true, Writeback = false },
        "unsafe" => new BlockdevCacheOptions { Direct = false, Writeback = true, NoFlush = true },
        _ => throw new ImgUsageException(invalid),
    };
}
