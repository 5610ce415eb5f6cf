using System.Globalization;
using SharpBlock.Errors;
using SharpBlock.Schema;

namespace SharpBlock.Nbd.Client;

/// <summary>
/// The filenames the nbd driver answers to, as qemu-img takes them: nbd://HOST[:PORT][/NAME] (also
/// nbd+tcp://), nbd+unix:///NAME?socket=PATH, and the older nbd:unix:PATH[:exportname=NAME] and
/// nbd:HOST:PORT[:exportname=NAME]. The default port is 10809, the default export the empty name.
/// </summary>
public static class NbdFilename
{
    private const string DefaultPort = "10809";
    private const string ExportNameKey = ":exportname=";

    /// <summary>The options of an nbd node for <paramref name="filename"/>, or null when it is not an NBD name.</summary>
    public static BlockdevOptions? Parse(string filename)
    {
        (SocketAddress Server, string Export)? parsed =
            filename.StartsWith("nbd://", StringComparison.Ordinal) ? Url(filename, "nbd://".Length, unix: false)
            : filename.StartsWith("nbd+tcp://", StringComparison.Ordinal) ? Url(filename, "nbd+tcp://".Length, unix: false)
            : filename.StartsWith("nbd+unix://", StringComparison.Ordinal) ? Url(filename, "nbd+unix://".Length, unix: true)
            : filename.StartsWith("nbd:", StringComparison.Ordinal) ? Legacy(filename)
            : null;
        if (parsed is not { } p)
            return null;
        return new BlockdevOptions
        {
            Driver = BlockdevDriver.Nbd,
            Nbd = new BlockdevOptionsNbd { Server = p.Server, Export = p.Export },
        };
    }

    private static (SocketAddress, string) Url(string url, int start, bool unix)
    {
        string rest = url[start..];
        string? query = null;
        int q = rest.IndexOf('?', StringComparison.Ordinal);
        if (q >= 0)
        {
            query = rest[(q + 1)..];
            rest = rest[..q];
        }

        int slash = rest.IndexOf('/', StringComparison.Ordinal);
        string authority = slash >= 0 ? rest[..slash] : rest;
        string export = slash >= 0 ? Uri.UnescapeDataString(rest[(slash + 1)..]) : "";
        if (unix)
        {
            // Exactly one parameter, socket=PATH, and no host: anything else is not an nbd+unix URL.
            if (authority.Length != 0 || query == null || !query.StartsWith("socket=", StringComparison.Ordinal) || query.Contains('&', StringComparison.Ordinal))
                throw Invalid();
            return (Unix(Uri.UnescapeDataString(query["socket=".Length..])), export);
        }

        if (query != null || authority.Length == 0)
            throw Invalid();
        string host = authority;
        string port = DefaultPort;
        int colon = authority.LastIndexOf(':');
        if (colon >= 0 && colon > authority.LastIndexOf(']'))
        {
            host = authority[..colon];
            port = authority[(colon + 1)..];
            if (!ushort.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out _))
                throw Invalid();
        }

        return (Inet(host.Trim('[', ']'), port), export);
    }

    private static (SocketAddress, string) Legacy(string filename)
    {
        string rest = filename["nbd:".Length..];
        string export = "";
        int e = rest.IndexOf(ExportNameKey, StringComparison.Ordinal);
        if (e >= 0)
        {
            export = rest[(e + ExportNameKey.Length)..];
            rest = rest[..e];
        }

        if (rest.StartsWith("unix:", StringComparison.Ordinal))
            return (Unix(rest["unix:".Length..]), export);
        int colon = rest.LastIndexOf(':');
        if (colon <= 0)
            throw new BlockException(Errno.EINVAL, $"error parsing address '{rest}'");
        return (Inet(rest[..colon].Trim('[', ']'), rest[(colon + 1)..]), export);
    }

    private static SocketAddress Unix(string path) =>
        new() { Type = SocketAddressKind.Unix, Unix = new UnixSocketAddress { Path = path } };

    private static SocketAddress Inet(string host, string port) =>
        new() { Type = SocketAddressKind.Inet, Inet = new InetSocketAddress { Host = host, Port = port } };

    private static BlockException Invalid() => new(Errno.EINVAL, "No valid URL specified");
}
