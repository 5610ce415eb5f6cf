using System.Net;
using System.Net.Sockets;
using SharpBlock.Errors;
using SharpBlock.Schema;

namespace SharpBlock.Net;

/// <summary>
/// Where an inet SocketAddress says to listen, resolved as QEMU 2.1's inet_listen does: an empty host is
/// every interface, the port a number or a service name, 'to' the last port of a range to try, and ipv4 /
/// ipv6 the address family (ipv6 wins when both are given, as the later assignment does in QEMU).
/// </summary>
public sealed record InetListenAddress(IReadOnlyList<IPAddress> Addresses, int FirstPort, int LastPort)
{
    public static InetListenAddress Resolve(InetSocketAddress inet)
    {
        AddressFamily family = inet.Ipv6 == true ? AddressFamily.InterNetworkV6
            : inet.Ipv4 == true ? AddressFamily.InterNetwork
            : AddressFamily.Unspecified;
        if (!ServiceNames.TryResolveTcpPort(inet.Port, out int port))
            throw new BlockException(Errno.EINVAL, $"address resolution failed for {inet.Host}:{inet.Port}: Servname not supported for ai_socktype");
        int last = inet.To is { } to ? to : port;
        return new InetListenAddress(ResolveHost(inet, family), port, last);
    }

    private static List<IPAddress> ResolveHost(InetSocketAddress inet, AddressFamily family)
    {
        string host = inet.Host.Trim('[', ']');
        if (host.Length == 0)
        {
            // Passive: an IPv6 wildcard socket with V6ONLY off takes IPv4 clients too (QEMU turns V6ONLY off
            // as well); IPv4's wildcard is the fallback where the host has no IPv6.
            return family switch
            {
                AddressFamily.InterNetwork => [IPAddress.Any],
                AddressFamily.InterNetworkV6 => [IPAddress.IPv6Any],
                _ => [IPAddress.IPv6Any, IPAddress.Any],
            };
        }

        IPAddress[] found;
        if (IPAddress.TryParse(host, out var literal))
        {
            found = [literal];
        }
        else
        {
            try
            {
                found = Dns.GetHostAddresses(host);
            }
            catch (SocketException ex)
            {
                throw new BlockException(Errno.EINVAL, $"address resolution failed for {inet.Host}:{inet.Port}: {ex.Message}", ex);
            }
        }

        var list = new List<IPAddress>();
        foreach (var a in found)
        {
            if (family == AddressFamily.Unspecified || a.AddressFamily == family)
                list.Add(a);
        }

        if (list.Count == 0)
            throw new BlockException(Errno.EINVAL, $"address resolution failed for {inet.Host}:{inet.Port}: Address family for hostname not supported");
        return list;
    }
}
