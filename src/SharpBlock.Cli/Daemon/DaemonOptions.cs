using System.Globalization;
using System.Net;

namespace SharpBlock.Cli.Daemon;

/// <summary>Where one QMP monitor listens.</summary>
internal abstract record MonitorEndpoint
{
    public sealed record Unix(string Path) : MonitorEndpoint;

    public sealed record Tcp(IPEndPoint EndPoint) : MonitorEndpoint;

    public sealed record Stdio : MonitorEndpoint;
}

/// <summary>
/// The daemon's command line, in the forms qemu-storage-daemon and qemu users already write:
/// --qmp unix:PATH|tcp:HOST:PORT|stdio, --chardev/--monitor pairs, --blockdev JSON or key=value, --pidfile.
/// </summary>
internal sealed class DaemonOptions
{
    public List<MonitorEndpoint> Monitors { get; } = [];
    public List<string> Blockdevs { get; } = [];

    /// <summary>Secrets from --object secret,id=ID,data=TEXT|file=PATH[,format=raw|base64].</summary>
    public Img.ImgSecrets Secrets { get; private set; } = Img.ImgSecrets.Parse([]);
    public SharpBlock.Schema.SocketAddress? NbdServer { get; set; }
    public List<SharpBlock.Schema.BlockExportOptions> Exports { get; } = [];

    /// <summary>The QEMU version query-version and the greeting report (--qmp-version): the seed's 2.1 unless asked.</summary>
    public SharpBlock.Qmp.Server.QmpVersion QmpVersion { get; set; } = SharpBlock.Qmp.Server.QmpVersion.Seed;
    public string? PidFile { get; set; }
    public bool Verbose { get; set; }
    public bool Help { get; set; }
    public bool Version { get; set; }

    private readonly Dictionary<string, MonitorEndpoint> _chardevs = new(StringComparer.Ordinal);

    public const string HelpText = """
        usage: sharpblock daemon [options]

        Runs the SharpBlock storage daemon. With no --qmp or --monitor option it listens for QMP on a
        Unix socket at a default path, which it prints.

          --qmp unix:PATH[,server=on,wait=off]    QMP on a Unix socket (created mode 0600)
          --qmp tcp:[HOST]:PORT[,server=on,...]    QMP on TCP (HOST defaults to 127.0.0.1)
          --qmp stdio                              QMP on standard input/output
          --chardev socket,id=ID,path=PATH[,server=on,wait=off]
          --chardev socket,id=ID,host=HOST,port=PORT[,server=on,wait=off]
          --chardev stdio,id=ID                    a character device, used by --monitor
          --monitor [chardev=]ID[,mode=control]    QMP on that character device
          --blockdev JSON|KEY=VALUE,...            add a node or device at start (as blockdev-add)
          --object secret,id=ID,data=TEXT|file=PATH[,format=raw|base64]
                                                   a secret, e.g. for a qcow2 image's
                                                   encrypt.format=aes,encrypt.key-secret=ID
          --nbd-server addr.type=inet,addr.host=HOST,addr.port=PORT
          --nbd-server addr.type=unix,addr.path=PATH
                                                   start the NBD server
          --export type=nbd,id=ID,node-name=NODE[,writable=on|off][,writethrough=on|off][,name=NAME][,description=TEXT]
                                  [,bitmaps.0=BITMAP...][,allocation-depth=on|off]
                                                   export a node (or device) over NBD, as block-export-add
          --qmp-version 2.1|7.2                    the QEMU version query-version reports (default 2.1,
                                                   the schema's; 7.2 for clients that gate on it)
          --pidfile PATH                           write the process id to PATH
          -v, --verbose                            log debug messages to stderr
          -h, --help                               this text
          -V, --version                            print the version and exit

        """;

    public static DaemonOptions Parse(string[] args)
    {
        var o = new DaemonOptions();
        var objects = new List<string>();
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            string? inline = null;
            if (a.StartsWith("--", StringComparison.Ordinal) && a.IndexOf('=', StringComparison.Ordinal) is > 2 and var eq)
            {
                inline = a[(eq + 1)..];
                a = a[..eq];
            }

            string Value()
            {
                if (inline != null)
                    return inline;
                if (i + 1 >= args.Length)
                    throw new ArgumentException($"option '{a}' needs a value");
                return args[++i];
            }

            switch (a)
            {
                case "-h" or "--help":
                    o.Help = true;
                    break;
                case "-V" or "--version":
                    o.Version = true;
                    break;
                case "-v" or "--verbose":
                    o.Verbose = true;
                    break;
                case "--qmp":
                    o.Monitors.Add(ParseQmp(Value()));
                    break;
                case "--chardev":
                    o.AddChardev(Value());
                    break;
                case "--monitor":
                    o.AddMonitor(Value());
                    break;
                case "--blockdev":
                    o.Blockdevs.Add(Value());
                    break;
                case "--object":
                    objects.Add(Value());
                    break;
                case "--nbd-server":
                    if (o.NbdServer != null)
                        throw new ArgumentException("--nbd-server may be given once");
                    o.NbdServer = NbdDaemonOptions.ParseServer(Value());
                    break;
                case "--export":
                    o.Exports.Add(NbdDaemonOptions.ParseExport(Value()));
                    break;
                case "--pidfile":
                    o.PidFile = Value();
                    break;
                case "--qmp-version":
                    o.QmpVersion = Value() switch
                    {
                        "2.1" => SharpBlock.Qmp.Server.QmpVersion.Seed,
                        "7.2" => SharpBlock.Qmp.Server.QmpVersion.Qemu72,
                        var v => throw new ArgumentException($"--qmp-version: '{v}' is not 2.1 or 7.2"),
                    };
                    break;
                default:
                    throw new ArgumentException($"unrecognized option '{a}'");
            }
        }

        if (o.Exports.Count > 0 && o.NbdServer == null)
            throw new ArgumentException("--export type=nbd needs --nbd-server");
        try
        {
            o.Secrets = Img.ImgSecrets.Parse(objects);
        }
        catch (Img.ImgUsageException ex)
        {
            throw new ArgumentException("--object: " + ex.Message);
        }

        return o;
    }

    private static Dictionary<string, string> Props(IEnumerable<string> parts, string option)
    {
        var d = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var p in parts)
        {
            if (p.Length == 0)
                continue;
            int eq = p.IndexOf('=', StringComparison.Ordinal);
            // QEMU's legacy bare flags: "server" means server=on, "nowait" means wait=off.
            var (k, v) = eq < 0 ? (p, "on") : (p[..eq], p[(eq + 1)..]);
            if (k == "nowait")
                (k, v) = ("wait", "off");
            d[k] = v;
        }

        return d;
    }

    private static void CheckServer(Dictionary<string, string> props, string option)
    {
        if (props.TryGetValue("server", out var s) && s is "off" or "no" or "false")
            throw new ArgumentException($"{option}: only server mode is supported");
        foreach (var k in props.Keys)
        {
            if (k is not ("server" or "wait" or "id" or "path" or "host" or "port" or "mode" or "pretty" or "chardev"))
                throw new ArgumentException($"{option}: unknown property '{k}'");
        }
    }

    internal static MonitorEndpoint ParseQmp(string spec)
    {
        string[] parts = spec.Split(',');
        string head = parts[0];
        var props = Props(parts.Skip(1), "--qmp");
        CheckServer(props, "--qmp");
        if (head == "stdio")
            return new MonitorEndpoint.Stdio();
        if (head.StartsWith("unix:", StringComparison.Ordinal))
        {
            string path = head[5..];
            return path.Length > 0 ? new MonitorEndpoint.Unix(path) : throw new ArgumentException("--qmp unix: needs a path");
        }

        if (head.StartsWith("tcp:", StringComparison.Ordinal))
        {
            string hp = head[4..];
            int colon = hp.LastIndexOf(':');
            if (colon < 0)
                throw new ArgumentException($"--qmp {spec}: expected tcp:HOST:PORT");
            return new MonitorEndpoint.Tcp(ParseEndPoint(hp[..colon], hp[(colon + 1)..], "--qmp"));
        }

        throw new ArgumentException($"--qmp {spec}: expected unix:PATH, tcp:HOST:PORT or stdio");
    }

    internal static IPEndPoint ParseEndPoint(string host, string port, string option)
    {
        if (!ushort.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out ushort p))
            throw new ArgumentException($"{option}: invalid port '{port}'");
        host = host.Trim('[', ']');
        IPAddress address;
        if (host.Length == 0 || host == "localhost")
            address = IPAddress.Loopback;
        else if (!IPAddress.TryParse(host, out address!))
            throw new ArgumentException($"{option}: '{host}' is not an IP address");
        return new IPEndPoint(address, p);
    }

    private void AddChardev(string spec)
    {
        string[] parts = spec.Split(',');
        var props = Props(parts.Skip(1), "--chardev");
        CheckServer(props, "--chardev");
        if (!props.TryGetValue("id", out var id))
            throw new ArgumentException("--chardev: 'id' is required");
        MonitorEndpoint ep = parts[0] switch
        {
            "stdio" => new MonitorEndpoint.Stdio(),
            "socket" when props.TryGetValue("path", out var path) => new MonitorEndpoint.Unix(path),
            "socket" when props.TryGetValue("port", out var port) =>
                new MonitorEndpoint.Tcp(ParseEndPoint(props.GetValueOrDefault("host", ""), port, "--chardev")),
            "socket" => throw new ArgumentException("--chardev socket: needs path= or port="),
            _ => throw new ArgumentException($"--chardev: backend '{parts[0]}' is not supported"),
        };
        if (!_chardevs.TryAdd(id, ep))
            throw new ArgumentException($"--chardev: duplicate id '{id}'");
    }

    private void AddMonitor(string spec)
    {
        string[] parts = spec.Split(',');
        var props = Props(parts[0].Contains('=', StringComparison.Ordinal) ? parts : parts.Skip(1), "--monitor");
        string id = parts[0].Contains('=', StringComparison.Ordinal) ? props.GetValueOrDefault("chardev", "") : parts[0];
        if (props.TryGetValue("mode", out var mode) && mode != "control")
            throw new ArgumentException("--monitor: only mode=control (QMP) is supported");
        if (!_chardevs.TryGetValue(id, out var ep))
            throw new ArgumentException($"--monitor: no --chardev with id '{id}'");
        Monitors.Add(ep);
    }
}
