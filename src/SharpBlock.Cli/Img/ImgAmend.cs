using SharpBlock.Drivers;
using SharpBlock.Drivers.Format.Qcow2;
using SharpBlock.Errors;

namespace SharpBlock.Cli.Img;

/// <summary>`img amend [-f FMT] [-p] [-q] -o compat=...,lazy_refcounts=...,refcount_bits=...,size=... FILE`: changes qcow2 options in place.</summary>
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
            return ImgOptionHelp.PrintAmend(spec.Format ?? await ImageFormats.ProbeNameAsync(spec.Path, CancellationToken.None).ConfigureAwait(false));
        }

        var opts = ImgCreate.ParseOptions(a.GetAll("-o"));
        string? compat = null;
        bool? lazy = null;
        int? refcountBits = null;
        long? size = null;
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
                case "size":
                    size = ImgCreate.ParseSize(value);
                    break;
                case "backing_file" or "backing_fmt":
                    throw new ImgUsageException("Cannot amend the backing file\nYou can use 'qemu-img rebase' instead.");
                case "cluster_size" or "preallocation" or "encryption" or "encrypt.format" or "encrypt.key-secret" or "compression_type" or "extended_l2":
                    throw new ImgUsageException($"Invalid parameter '{key}'\nThis option is only supported for image creation");
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
            // The size last, as qemu-img amend does; unlike resize it needs no --shrink to make it smaller.
            if (size is { } newSize && newSize != q.Length)
                await q.TruncateAsync(newSize).ConfigureAwait(false);
        }

        return 0;
    }
}
