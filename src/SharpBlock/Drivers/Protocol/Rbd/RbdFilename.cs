using System.Text;
using SharpBlock.Errors;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Protocol.Rbd;

/// <summary>
/// The filename form qemu-img takes for rbd: rbd:POOL/[NAMESPACE/]IMAGE[@SNAP][:KEY=VALUE...], where a backslash
/// escapes the next character. Keys: conf (configuration file), id (client id), mon_host (monitors, separated by
/// ';' or ','), auth_supported / auth_client_required (cephx and/or none, separated by ';').
/// </summary>
public static class RbdFilename
{
    private const string Prefix = "rbd:";

    /// <summary>The options of an rbd node for <paramref name="filename"/>, or null when it does not start with "rbd:".</summary>
    public static BlockdevOptions? Parse(string filename)
    {
        if (!filename.StartsWith(Prefix, StringComparison.Ordinal))
            return null;
        var parts = Split(filename[Prefix.Length..], ':');
        var path = Split(parts[0], '@');
        if (path.Count > 2)
            throw Invalid(filename, "more than one '@'");
        var names = Split(path[0], '/');
        if (names.Count is < 2 or > 3 || names.Any(n => n.Length == 0))
            throw Invalid(filename, "expected POOL/IMAGE or POOL/NAMESPACE/IMAGE");
        var o = new BlockdevOptionsRbd
        {
            Pool = Unescape(names[0]),
            Namespace = names.Count == 3 ? Unescape(names[1]) : null,
            Image = Unescape(names[^1]),
            Snapshot = path.Count == 2 ? Unescape(path[1]) : null,
        };
        foreach (var part in parts.Skip(1))
        {
            int eq = part.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
                throw Invalid(filename, $"'{Unescape(part)}' is not KEY=VALUE");
            string key = part[..eq];
            string value = Unescape(part[(eq + 1)..]);
            switch (key)
            {
                case "conf": o.Conf = value; break;
                case "id": o.User = value; break;
                case "mon_host": o.Server = [.. value.Split([';', ','], StringSplitOptions.RemoveEmptyEntries).Select(Monitor)]; break;
                case "auth_supported" or "auth_client_required":
                    o.AuthClientRequired = [.. value.Split(';').Select(m => m switch
                    {
                        "cephx" => RbdAuthMode.Cephx,
                        "none" => RbdAuthMode.None,
                        _ => throw Invalid(filename, $"unknown authentication mode '{m}'"),
                    })];
                    break;
                default: throw Invalid(filename, $"option '{key}' is not supported");
            }
        }

        return new BlockdevOptions { Driver = BlockdevDriver.Rbd, Rbd = o };
    }

    /// <summary>The filename for these options (without the connection keys), as img info shows it.</summary>
    public static string Format(BlockdevOptionsRbd o)
    {
        var sb = new StringBuilder(Prefix).Append(Escape(o.Pool)).Append('/');
        if (!string.IsNullOrEmpty(o.Namespace))
            sb.Append(Escape(o.Namespace)).Append('/');
        sb.Append(Escape(o.Image));
        if (o.Snapshot != null)
            sb.Append('@').Append(Escape(o.Snapshot));
        if (o.Conf != null)
            sb.Append(":conf=").Append(Escape(o.Conf, name: false));
        return sb.ToString();
    }

    private static InetSocketAddress Monitor(string s)
    {
        int colon = s.LastIndexOf(':');
        bool hasPort = colon > 0 && colon > s.LastIndexOf(']');
        return new InetSocketAddress { Host = (hasPort ? s[..colon] : s).Trim('[', ']'), Port = hasPort ? s[(colon + 1)..] : "6789" };
    }

    /// <summary>Splits at unescaped <paramref name="sep"/>, keeping escapes for the pieces to undo.</summary>
    private static List<string> Split(string s, char sep)
    {
        var parts = new List<string>();
        int start = 0;
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] == '\\')
                i++;
            else if (s[i] == sep)
            {
                parts.Add(s[start..i]);
                start = i + 1;
            }
        }

        parts.Add(s[start..]);
        return parts;
    }

    private static string Unescape(string s)
    {
        var sb = new StringBuilder(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] == '\\' && i + 1 < s.Length)
                i++;
            sb.Append(s[i]);
        }

        return sb.ToString();
    }

    /// <summary>Names (pool, image, snapshot) escape the separators of the path; option values only ':' and '\\'.</summary>
    private static string Escape(string s, bool name = true)
    {
        var sb = new StringBuilder(s.Length);
        foreach (char c in s)
        {
            if (c is ':' or '\\' || (name && c is '@' or '/'))
                sb.Append('\\');
            sb.Append(c);
        }

        return sb.ToString();
    }

    private static BlockException Invalid(string filename, string why) =>
        new(Errno.EINVAL, $"Invalid rbd filename '{filename}': {why}");
}
