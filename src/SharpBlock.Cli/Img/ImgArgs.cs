using SharpBlock.Options;

namespace SharpBlock.Cli.Img;

/// <summary>
/// getopt-style parsing as qemu-img does it: short options with a value ("-f qcow2" or "-fqcow2"), flags,
/// long options ("--output=json" or "--output json"), and positional arguments in order.
/// </summary>
internal sealed class ImgArgs
{
    private readonly Dictionary<string, List<string>> _values = [];
    private readonly HashSet<string> _flags = [];

    public List<string> Positional { get; } = [];

    public static ImgArgs Parse(string[] args, string shortWithValue, string shortFlags, string[] longWithValue, string[] longFlags)
    {
        var r = new ImgArgs();
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            if (a == "--")
            {
                r.Positional.AddRange(args[(i + 1)..]);
                break;
            }

            if (a.StartsWith("--", StringComparison.Ordinal))
            {
                string name = a[2..];
                string? value = null;
                int eq = name.IndexOf('=', StringComparison.Ordinal);
                if (eq >= 0)
                {
                    value = name[(eq + 1)..];
                    name = name[..eq];
                }

                if (name == "help" && value == null)
                    throw new ImgHelpRequestedException();
                if (Array.IndexOf(longFlags, name) >= 0 && value == null)
                {
                    r._flags.Add("--" + name);
                    continue;
                }

                if (Array.IndexOf(longWithValue, name) < 0)
                    throw ImgUsageException.Syntax($"unrecognized option '{a}'");
                if (value == null)
                {
                    if (i + 1 >= args.Length)
                        throw ImgUsageException.Syntax($"missing argument for option '--{name}'");
                    value = args[++i];
                }

                r.Add("--" + name, value);
                continue;
            }

            if (a.Length >= 2 && a[0] == '-')
            {
                for (int j = 1; j < a.Length; j++)
                {
                    char c = a[j];
                    // Every qemu-img subcommand takes -h, wherever it stands, as a request for the usage text.
                    if (c == 'h' && !shortWithValue.Contains(c, StringComparison.Ordinal))
                        throw new ImgHelpRequestedException();
                    if (shortFlags.Contains(c, StringComparison.Ordinal))
                    {
                        r._flags.Add("-" + c);
                        continue;
                    }

                    if (!shortWithValue.Contains(c, StringComparison.Ordinal))
                        throw ImgUsageException.Syntax($"unrecognized option '{a}'");
                    string v;
                    if (j + 1 < a.Length)
                        v = a[(j + 1)..];
                    else if (i + 1 < args.Length)
                        v = args[++i];
                    else
                        throw ImgUsageException.Syntax($"missing argument for option '-{c}'");
                    r.Add("-" + c, v);
                    break;
                }

                continue;
            }

            r.Positional.Add(a);
        }

        return r;
    }

    private void Add(string key, string value)
    {
        if (!_values.TryGetValue(key, out var list))
            _values[key] = list = [];
        list.Add(value);
    }

    public string? Get(string key) => _values.TryGetValue(key, out var l) ? l[^1] : null;

    public IReadOnlyList<string> GetAll(string key) => _values.TryGetValue(key, out var l) ? l : [];

    public bool Has(string flag) => _flags.Contains(flag);

    /// <summary>--output=human|json.</summary>
    public bool Json()
    {
        string o = Get("--output") ?? "human";
        return o switch
        {
            "json" => true,
            "human" => false,
            _ => throw new ImgUsageException($"--output must be used with human or json as argument."),
        };
    }

    /// <summary>A size as typed on the command line (create's SIZE, --size, dd's operands), in qemu-img's words when it is not one.</summary>
    public static long ParseSize(string s)
    {
        if (!SizeParser.TryParse(s, out ulong v) || v > long.MaxValue)
            throw new ImgUsageException("Invalid image size specified. You may use k, M, G, T, P or E suffixes for\nkilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.") { EveryLinePrefixed = true };
        return (long)v;
    }
}
