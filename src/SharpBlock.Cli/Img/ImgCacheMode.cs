using SharpBlock.Schema;

namespace SharpBlock.Cli.Img;

/// <summary>The -t/-T cache modes of the img commands, as the -drive cache= shorthands map them.</summary>
internal static class ImgCacheMode
{
    public static BlockdevCacheOptions Parse(string mode) => mode switch
    {
        "none" => new BlockdevCacheOptions { Direct = true, Writeback = true },
        "writeback" => new BlockdevCacheOptions { Direct = false, Writeback = true },
        "writethrough" => new BlockdevCacheOptions { Direct = false, Writeback = false },
        "directsync" => new BlockdevCacheOptions { Direct = true, Writeback = false },
        "unsafe" => new BlockdevCacheOptions { Direct = false, Writeback = true, NoFlush = true },
        _ => throw new ImgUsageException($"Invalid cache mode '{mode}'"),
    };
}
