using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Protocol.Curl;

/// <summary>
/// Registers the five curl drivers (one per scheme, one engine under them all) and the URLs that name them,
/// so "https://host/disk.qcow2" opens as a file name in img and wherever a backing file is resolved.
/// </summary>
internal static class CurlDriver
{
    public static void Register(BlockDriverRegistry registry)
    {
        registry.Register(BlockdevDriver.Http, static (ctx, _) => CurlNode.OpenAsync(ctx, CurlScheme.Http, ctx.Options.Http));
        registry.Register(BlockdevDriver.Https, static (ctx, _) => CurlNode.OpenAsync(ctx, CurlScheme.Https, ctx.Options.Https));
        registry.Register(BlockdevDriver.Ftp, static (ctx, _) => CurlNode.OpenAsync(ctx, CurlScheme.Ftp, ctx.Options.Ftp));
        registry.Register(BlockdevDriver.Ftps, static (ctx, _) => CurlNode.OpenAsync(ctx, CurlScheme.Ftps, ctx.Options.Ftps));
        registry.Register(BlockdevDriver.Tftp, static (ctx, _) => CurlNode.OpenAsync(ctx, CurlScheme.Tftp, ctx.Options.Tftp));
        registry.RegisterFilenameProtocol(ParseUrl);
    }

    /// <summary>The options of a curl node for a URL with one of the five schemes; null for anything else.</summary>
    public static BlockdevOptions? ParseUrl(string filename)
    {
        if (CurlScheme.OfUrl(filename) is not { } scheme)
            return null;
        var o = new BlockdevOptions { Driver = scheme.Driver };
        var curl = new BlockdevOptionsCurl { Url = filename };
        if (scheme == CurlScheme.Http)
            o.Http = curl;
        else if (scheme == CurlScheme.Https)
            o.Https = curl;
        else if (scheme == CurlScheme.Ftp)
            o.Ftp = curl;
        else if (scheme == CurlScheme.Ftps)
            o.Ftps = curl;
        else
            o.Tftp = curl;
        return o;
    }
}
