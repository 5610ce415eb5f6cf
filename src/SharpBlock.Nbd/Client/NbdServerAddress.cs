using System.Globalization;
using System.Net;
using System.Net.Sockets;
using SharpBlock.Errors;
using SharpBlock.Schema;

namespace SharpBlock.Nbd.Client;

/// <summary>Where an NBD server is: a resolved endpoint plus how to name it in messages and filenames.</summary>
public sealed record NbdServerAddress(EndPoint EndPoint, string Display, bool IsUnix)
{
    /// <summary>
    /// The URL form qemu prints for an nbd node (nbd://HOST:PORT/EXPORT or nbd+unix:///EXPORT?socket=PATH); the
    /// empty export has no path at all (nbd://HOST:PORT, nbd+unix://?socket=PATH).
    /// </summary>
    public string Url(string export) => (IsUnix, export.Length) switch
    {
        (true, 0) => $"nbd+unix://?socket={Display}",
        (true, _) => $"nbd+unix:///{export}?socket={Display}",
        (false, 0) => $"nbd://{Display}",
        (false, _) => $"nbd://{Display}/{export}",
    };

    public static NbdServerAddress FromSocketAddress(SharpBlock.Schema.SocketAddress address)
    {
        switch (address.Type)
        {
            case SocketAddressKind.Unix when address.Unix is { } u:
                return new NbdServerAddress(new UnixDomainSocketEndPoint(u.Path), u.Path, true);
            case SocketAddressKind.Inet when address.Inet is { } i:
                {
                    if (!ushort.TryParse(i.Port, NumberStyles.None, CultureInfo.InvariantCulture, out ushort port))
                        throw new BlockException(Errno.EINVAL, $"Invalid port '{i.Port}'");
                    IPAddress ip = ResolveHost(i.Host);
                    string display = ip.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{i.Host}]:{port}" : $"{i.Host}:{port}";
                    return new NbdServerAddress(new IPEndPoint(ip, port), display, false);
                }

            default:
                throw new BlockException(Errno.EINVAL, $"Socket address type '{address.Type.ToWire()}' is not supported here");
        }
    }

    /// <summary>An IP address as given, localhost as loopback, anything else through the resolver.</summary>
    public static IPAddress ResolveHost(string host)
    {
        string h = host.Trim('[', ']');
        if (h.Length == 0 || h == "localhost")
            return IPAddress.Loopback;
        if (IPAddress.TryParse(h, out var ip))
            return ip;
        try
        {
            var all = Dns.GetHostAddresses(h);
            if (all.Length > 0)
                return all[0];
        }
        catch (SocketException)
        {
        }

        throw new BlockException(Errno.EINVAL, $"address resolution failed for {host}");
    }
}
