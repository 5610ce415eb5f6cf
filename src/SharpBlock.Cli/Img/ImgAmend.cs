using SharpBlock.Drivers.Format.Qcow2;
using SharpBlock.Errors;

namespace SharpBlock.Cli.Img;

/// <summary>`img amend [-f FMT] [-p] [-q] -o compat=...,lazy_refcounts=...,refcount_bits=... FILE`: changes qcow2 options in place.</summary>
internal static class ImgAmend
{
    public static async Task<int> RunAsync(string[] argv)
    {
        var a = ImgArgs.Parse(argv, "fot", "pqU", ["object"], ["force", "image-opts", "force-share"]);
        if (a.Positional.Count != 1)
            throw new ImgUsageException("Expecting one image file name");
        if (a.GetAll("-o").Count == 0)
            throw new ImgUsageException("Must specify options (-o)");
        if (ImgOptionHelp.Requested(a.GetAll("-o")))
        {
            var spec = ImgImage.Spec(a, a.Positional[0], a.Get("-f"));
            return ImgOptionHelp.PrintAmend(spec.Format ?? await Qcow2Driver.ProbeAsync(spec.Path, CancellationToken.None).ConfigureAwait(false));
        }

        var opts = ImgCreate.ParseOptions(a.GetAll("-o"));
        string? compat = null;
        bool? lazy = null;
        int? refcountBits = null;
        foreach (var (key, value) in opts)
        {
            switch (key)
            {
                case "compat":
                    compat = value;
                    break;
                case "lazy_refcounts":
                    lazy = value switch
                    {
                        "on" or "true" or "yes" => true,
                        "off" or "false" or "no" => false,
                        _ => throw new ImgUsageException($"Parameter 'lazy_refcounts' expects 'on' or 'off'"),
                    };
                    break;
                case "refcount_bits":
                    refcountBits = int.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int rb)
                        ? rb
                        : throw new ImgUsageException($"Parameter 'refcount_bits' expects a non-negative number below 2^64");
                    break;
                default:
                    throw new ImgUsageException($"Changing '{key}' is not supported");
            }
        }

        var cache = ImgCacheMode.Target(a);
        var (graph, node) = await ImgImage.OpenAsync(a, a.Positional[0], a.Get("-f"), readOnly: false, cache: cache).ConfigureAwait(false);
        await using (graph.ConfigureAwait(false))
        {
            if (node is not Qcow2Node q)
                throw new BlockException(Errno.EOPNOTSUPP, $"Format driver '{node.DriverName}' does not support option amendment");
            await q.AmendAsync(compat, lazy, refcountBits).ConfigureAwait(false);
        }

        return 0;
    }
}
