using SharpBlock.Schema;

namespace SharpBlock.Cli.Daemon;

/// <summary>
/// qemu-storage-daemon's NBD options in key=value form: --nbd-server addr.type=inet,addr.host=H,addr.port=P
/// (or addr.type=unix,addr.path=P) and --export type=nbd,id=ID,node-name=N,writable=on|off,writethrough=on|off,
/// bitmaps.0=BITMAP (or bitmap=BITMAP),allocation-depth=on|off,
/// name=NAME,description=TEXT, which is block-export-add's argument; device=D is our older spelling of node-name=.
/// </summary>
internal static class NbdDaemonOptions
{
    private static Dictionary<string, string> Props(string spec, string option)
    {
        var d = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var p in spec.Split(','))
        {
            if (p.Length == 0)
                continue;
            int eq = p.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
                throw new ArgumentException($"{option}: expected key=value, got '{p}'");
            if (!d.TryAdd(p[..eq], p[(eq + 1)..]))
                throw new ArgumentException($"{option}: '{p[..eq]}' given twice");
        }

        return d;
    }

    private static bool Bool(string value, string key, string option) => value switch
    {
        "on" or "yes" or "true" => true,
        "off" or "no" or "false" => false,
        _ => throw new ArgumentException($"{option}: parameter '{key}' expects 'on' or 'off'"),
    };

    public static SocketAddress ParseServer(string spec)
    {
        var p = Props(spec, "--nbd-server");
        foreach (var k in p.Keys)
        {
            if (k is not ("addr.type" or "addr.host" or "addr.port" or "addr.path"))
                throw new ArgumentException($"--nbd-server: unknown parameter '{k}'");
        }

        string type = p.GetValueOrDefault("addr.type") ?? throw new ArgumentException("--nbd-server: parameter 'addr.type' is missing");
        return type switch
        {
            "inet" => new SocketAddress
            {
                Type = SocketAddressKind.Inet,
                Inet = new InetSocketAddress
                {
                    Host = p.GetValueOrDefault("addr.host") ?? throw new ArgumentException("--nbd-server: parameter 'addr.host' is missing"),
                    Port = p.GetValueOrDefault("addr.port") ?? throw new ArgumentException("--nbd-server: parameter 'addr.port' is missing"),
                },
            },
            "unix" => new SocketAddress
            {
                Type = SocketAddressKind.Unix,
                Unix = new UnixSocketAddress
                {
                    Path = p.GetValueOrDefault("addr.path") ?? throw new ArgumentException("--nbd-server: parameter 'addr.path' is missing"),
                },
            },
            _ => throw new ArgumentException($"--nbd-server: addr.type '{type}' is not supported (inet or unix)"),
        };
    }

    public static BlockExportOptions ParseExport(string spec)
    {
        var p = Props(spec, "--export");
        foreach (var k in p.Keys)
        {
            if (k is not ("type" or "id" or "node-name" or "device" or "writable" or "writethrough" or "name" or "description"
                or "allocation-depth" or "bitmap") && !k.StartsWith("bitmaps.", StringComparison.Ordinal))
                throw new ArgumentException($"--export: unknown parameter '{k}'");
        }

        string type = p.GetValueOrDefault("type") ?? throw new ArgumentException("--export: parameter 'type' is missing");
        if (type != "nbd")
            throw new ArgumentException($"--export: type '{type}' is not supported (nbd)");
        string? device = p.GetValueOrDefault("device");
        string? node = p.GetValueOrDefault("node-name");
        if ((device == null) == (node == null))
            throw new ArgumentException("--export: exactly one of 'device' and 'node-name' is required");
        string? name = p.GetValueOrDefault("name");
        // qemu-storage-daemon requires an id; our older device= form named the export only.
        string id = p.GetValueOrDefault("id") ?? (device != null ? name ?? device : throw new ArgumentException("--export: parameter 'id' is missing"));
        return new BlockExportOptions
        {
            Type = BlockExportType.Nbd,
            Id = id,
            NodeName = node ?? device!,
            Writable = p.TryGetValue("writable", out var w) && Bool(w, "writable", "--export"),
            Writethrough = p.TryGetValue("writethrough", out var wt) && Bool(wt, "writethrough", "--export"),
            Nbd = new BlockExportOptionsNbd
            {
                Name = name,
                Description = p.GetValueOrDefault("description"),
                Bitmaps = Bitmaps(p),
                AllocationDepth = p.TryGetValue("allocation-depth", out var ad) ? Bool(ad, "allocation-depth", "--export") : null,
            },
        };
    }

    /// <summary>
    /// The export's bitmaps as qemu-storage-daemon's keyval list (bitmaps.0=NAME, or bitmaps.0.node and
    /// bitmaps.0.name), or bitmap=NAME for one (as qemu-nbd's -B names one); null when none is named.
    /// </summary>
    private static List<BlockDirtyBitmapOrStr>? Bitmaps(Dictionary<string, string> p)
    {
        var list = new List<BlockDirtyBitmapOrStr>();
        if (p.GetValueOrDefault("bitmap") is { } one)
            list.Add(new BlockDirtyBitmapOrStr { Local = one });
        int listed = 0;
        for (; ; listed++)
        {
            string key = $"bitmaps.{listed}";
            if (p.TryGetValue(key, out var local))
            {
                list.Add(new BlockDirtyBitmapOrStr { Local = local });
            }
            else if (p.TryGetValue(key + ".name", out var bname))
            {
                string node = p.GetValueOrDefault(key + ".node") ?? throw new ArgumentException($"--export: parameter '{key}.node' is missing");
                list.Add(new BlockDirtyBitmapOrStr { External = new BlockDirtyBitmap { Node = node, Name = bname } });
            }
            else
            {
                break;
            }
        }

        foreach (var k in p.Keys)
        {
            if (k.StartsWith("bitmaps.", StringComparison.Ordinal) && !IsListed(k, listed))
                throw new ArgumentException($"--export: unknown parameter '{k}'");
        }

        return list.Count == 0 ? null : list;
    }

    private static bool IsListed(string key, int count)
    {
        for (int i = 0; i < count; i++)
        {
            if (key == $"bitmaps.{i}" || key == $"bitmaps.{i}.name" || key == $"bitmaps.{i}.node")
                return true;
        }

        return false;
    }
}
