using System.Globalization;

namespace SharpBlock.Net;

/// <summary>
/// TCP service names as getaddrinfo knows them from /etc/services ("nbd" is 10809), for SocketAddress ports
/// given by name as QEMU accepts them. .NET has no getservbyname; the file is what glibc's files backend reads.
/// </summary>
public static class ServiceNames
{
    private const string ServicesFile = "/etc/services";

    private static readonly Lazy<Dictionary<string, int>> Tcp = new(Load);

    /// <summary>A port given as a number (0 to 65535) or as a TCP service name or alias.</summary>
    public static bool TryResolveTcpPort(string port, out int number)
    {
        if (int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out number))
            return number <= ushort.MaxValue;
        return Tcp.Value.TryGetValue(port, out number);
    }

    private static Dictionary<string, int> Load()
    {
        var map = new Dictionary<string, int>(StringComparer.Ordinal);
        string[] lines;
        try
        {
            lines = File.ReadAllLines(ServicesFile);
        }
        catch (IOException)
        {
            return map;
        }
        catch (UnauthorizedAccessException)
        {
            return map;
        }

        foreach (string raw in lines)
        {
            // "name port/proto [aliases...] [# comment]"
            string line = raw;
            int hash = line.IndexOf('#', StringComparison.Ordinal);
            if (hash >= 0)
                line = line[..hash];
            string[] f = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 2)
                continue;
            int slash = f[1].IndexOf('/', StringComparison.Ordinal);
            if (slash < 0 || f[1][(slash + 1)..] != "tcp"
                || !int.TryParse(f[1].AsSpan(0, slash), NumberStyles.None, CultureInfo.InvariantCulture, out int p) || p > ushort.MaxValue)
                continue;
            for (int i = 0; i < f.Length; i++)
            {
                if (i != 1)
                    map.TryAdd(f[i], p);
            }
        }

        return map;
    }
}
