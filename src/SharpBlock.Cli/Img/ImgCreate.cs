using System.Globalization;
using System.Text;
using SharpBlock.Drivers;
using SharpBlock.Drivers.Format.Qcow2;
using SharpBlock.Drivers.Format.Raw;
using SharpBlock.Graph;
using SharpBlock.Qmp.Schema;

namespace SharpBlock.Cli.Img;

/// <summary>`img create [-f FMT] [-o OPTIONS] [-b BACKING [-F FMT]] [-q] FILE [SIZE]`.</summary>
internal static class ImgCreate
{
    public static async Task<int> RunAsync(string[] argv)
    {
        var a = ImgArgs.Parse(argv, "fobF", "quh", ["object"], []);
        string fmt = a.Get("-f") ?? "raw";
        if (ImgOptionHelp.Requested(a.GetAll("-o")))
            return ImgOptionHelp.PrintCreate(fmt);
        var opts = ParseOptions(a.GetAll("-o"));
        if (a.Get("-b") is { } b)
            opts["backing_file"] = b;
        if (a.Get("-F") is { } bf)
            opts["backing_fmt"] = bf;
        if (a.Positional.Count < 1)
            throw new ImgUsageException("Expecting image file name");
        string path = a.Positional[0];
        long? size = null;
        if (a.Positional.Count >= 2)
            size = ParseSize(a.Positional[1]);
        else if (opts.TryGetValue("size", out var s))
            size = ParseSize(s);
        if (a.Positional.Count > 2)
            throw new ImgUsageException("Unexpected argument: " + a.Positional[2]);

        opts.TryGetValue("backing_file", out var backing);
        opts.TryGetValue("backing_fmt", out var backingFmt);
        // qemu-img 7.2 refuses to guess a backing file's format (a probed raw file can pass for anything), -u or not.
        if (backing != null && backingFmt == null)
            throw new ImgUsageException($"{path}: Backing file specified without backing format");

        if (size == null && backing != null)
        {
            string resolved = BackingFiles.Resolve(path, backing);
            var (g, n) = await ImgImage.OpenAsync(resolved, backingFmt, readOnly: true).ConfigureAwait(false);
            await using (g.ConfigureAwait(false))
                size = n.Length;
        }

        if (size == null)
            throw new ImgUsageException("Image creation needs a size parameter");

        var prealloc = ParsePrealloc(opts.GetValueOrDefault("preallocation"));
        bool quiet = a.Has("-q");
        switch (fmt)
        {
            case "qcow2":
                {
                    var o = new Qcow2CreateOptions
                    {
                        Size = size.Value,
                        ClusterSize = opts.TryGetValue("cluster_size", out var cs) ? (int)ParseSize(cs) : 65536,
                        Compat = opts.GetValueOrDefault("compat") ?? "1.1",
                        LazyRefcounts = ParseBool(opts.GetValueOrDefault("lazy_refcounts"), "lazy_refcounts"),
                        RefcountBits = opts.TryGetValue("refcount_bits", out var rb) ? ParseInt(rb, "refcount_bits") : 16,
                        Preallocation = prealloc,
                        BackingFile = backing,
                        BackingFormat = backingFmt,
                        Encrypted = ImgEncryptOptions.IsEncrypted(opts, fmt),
                    };
                    // Only the header records encryption, so the key is not needed here; a named secret must exist.
                    ImgEncryptOptions.FindKey(opts, ImgSecrets.Parse(a.GetAll("--object")));
                    if (!quiet)
                        Console.Out.WriteLine(Describe(path, o, opts.ContainsKey("compat"), opts.ContainsKey("preallocation")).Replace("fmt=qcow2", "fmt=qcow2" + ImgEncryptOptions.Describe(opts), StringComparison.Ordinal));
                    Qcow2Creator.Validate(o);
                    await ImgTargetLock.CreateAsync(path, async () => await Qcow2Creator.CreateAsync(path, o).ConfigureAwait(false)).ConfigureAwait(false);
                    break;
                }

            case "raw":
                ImgEncryptOptions.IsEncrypted(opts, fmt);
                if (backing != null)
                    throw new ImgUsageException("Backing file not supported for file format 'raw'");
                if (!quiet)
                {
                    Console.Out.WriteLine(opts.ContainsKey("preallocation")
                        ? $"Formatting '{path}', fmt=raw size={size.Value} preallocation={opts["preallocation"]}"
                        : $"Formatting '{path}', fmt=raw size={size.Value}");
                }

                await ImgTargetLock.CreateAsync(path, async () => await RawCreator.CreateAsync(path, size.Value, prealloc).ConfigureAwait(false)).ConfigureAwait(false);
                break;
            default:
                {
                    // Any other registered format makes its default image; its own -o options come with the
                    // format contract's typed creation options.
                    var format = BlockDriverRegistry.Default.FindFormat(fmt) ?? throw new ImgUsageException($"Unknown file format '{fmt}'");
                    foreach (string key in opts.Keys)
                    {
                        if (key is not ("size" or "backing_file" or "backing_fmt"))
                            throw new ImgUsageException($"Invalid parameter '{key}'");
                    }

                    if (backing != null && !format.HasBackingFiles)
                        throw new ImgUsageException($"Backing file not supported for file format '{fmt}'");
                    if (!quiet)
                        Console.Out.WriteLine($"Formatting '{path}', fmt={fmt} size={size.Value}");
                    long sz = size.Value;
                    await ImgTargetLock.CreateAsync(path, async () => await format.CreateAsync(path, sz, backing, backingFmt, CancellationToken.None).ConfigureAwait(false)).ConfigureAwait(false);
                    break;
                }
        }

        return 0;
    }

    private static string Describe(string path, Qcow2CreateOptions o, bool compatGiven, bool preallocGiven)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"Formatting '{path}', fmt=qcow2 cluster_size={o.ClusterSize} extended_l2=off");
        if (preallocGiven)
            sb.Append(" preallocation=").Append(o.Preallocation.ToString().ToLowerInvariant());
        sb.Append(CultureInfo.InvariantCulture, $" compression_type=zlib size={o.Size}");
        if (o.BackingFile != null)
            sb.Append(" backing_file=").Append(o.BackingFile);
        if (o.BackingFormat != null)
            sb.Append(" backing_fmt=").Append(o.BackingFormat);
        if (compatGiven)
            sb.Append(" compat=").Append(o.Compat);
        sb.Append(" lazy_refcounts=").Append(o.LazyRefcounts ? "on" : "off");
        sb.Append(CultureInfo.InvariantCulture, $" refcount_bits={o.RefcountBits}");
        return sb.ToString();
    }

    /// <summary>-o a=b,c=d (",," is a literal comma); several -o accumulate.</summary>
    public static Dictionary<string, string> ParseOptions(IReadOnlyList<string> lists)
    {
        var d = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var list in lists)
        {
            var parts = ImgOptionString.Split(list);
            foreach (var p in parts)
            {
                if (p.Length == 0)
                    continue;
                int eq = p.IndexOf('=', StringComparison.Ordinal);
                if (eq < 0)
                    throw new ImgUsageException($"Invalid option list: {list}");
                string key = p[..eq];
                if (key is not ("size" or "compat" or "backing_file" or "backing_fmt" or "cluster_size" or "preallocation"
                    or "lazy_refcounts" or "refcount_bits" or "compression_type" or "extended_l2"
                    or ImgEncryptOptions.Encryption or ImgEncryptOptions.Format or ImgEncryptOptions.KeySecret))
                    throw new ImgUsageException($"Invalid parameter '{key}'");
                d[key] = p[(eq + 1)..];
            }
        }

        if (d.TryGetValue("compression_type", out var ct) && ct != "zlib")
            throw new ImgUsageException($"Unsupported compression type '{ct}'");
        if (d.TryGetValue("extended_l2", out var el2) && ParseBool(el2, "extended_l2"))
            throw new ImgUsageException("extended_l2 is not supported");
        return d;
    }

    public static long ParseSize(string s)
    {
        if (!SizeParser.TryParse(s, out ulong v) || v > long.MaxValue)
            throw new ImgUsageException("Invalid image size specified. You may use k, M, G, T, P or E suffixes for kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
        return (long)v;
    }

    public static int ParseInt(string s, string name) =>
        int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out int v) ? v : throw new ImgUsageException($"Parameter '{name}' expects a number");

    public static bool ParseBool(string? s, string name) => s switch
    {
        null or "off" or "false" or "no" => false,
        "on" or "true" or "yes" => true,
        _ => throw new ImgUsageException($"Parameter '{name}' expects 'on' or 'off'"),
    };

    public static Preallocation ParsePrealloc(string? s) => s switch
    {
        null or "off" => Preallocation.Off,
        "metadata" => Preallocation.Metadata,
        "falloc" => Preallocation.Falloc,
        "full" => Preallocation.Full,
        _ => throw new ImgUsageException($"Parameter 'preallocation' does not accept value '{s}'"),
    };
}
