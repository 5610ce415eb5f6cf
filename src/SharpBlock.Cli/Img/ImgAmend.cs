using SharpBlock.Drivers;
using SharpBlock.Drivers.Creation;
using SharpBlock.Errors;

namespace SharpBlock.Cli.Img;

/// <summary>`img amend [-f FMT] [-p] [-q] -o OPTIONS FILE`: changes a format's settings in place, if the format can (<see cref="IAmendableImage"/>).</summary>
internal static class ImgAmend
{
    public static async Task<int> RunAsync(string[] argv)
    {
        var a = ImgArgs.Parse(argv, "fot", "pqU", ["object"], ["force", "image-opts", "force-share"]);
        if (a.Positional.Count != 1)
            throw ImgUsageException.Syntax("Expecting one image file name");
        if (a.GetAll("-o").Count == 0)
            throw new ImgUsageException("Must specify options (-o)");
        if (ImgOptionHelp.Requested(a.GetAll("-o")))
        {
            var spec = ImgImage.Spec(a, a.Positional[0], a.Get("-f"));
            string name = spec.Format ?? await ImageFormats.ProbeNameAsync(spec.Path, CancellationToken.None).ConfigureAwait(false);
            return ImgOptionHelp.PrintAmend(ImgNewImage.Format(name));
        }

        var values = ImageOptionValues.Parse(a.GetAll("-o"));
        var cache = ImgCacheMode.Target(a);
        var (graph, node) = await ImgImage.OpenAsync(a, a.Positional[0], a.Get("-f"), readOnly: false, cache: cache).ConfigureAwait(false);
        await using (graph.ConfigureAwait(false))
        {
            if (node is not IAmendableImage amendable)
                throw new BlockException(Errno.EOPNOTSUPP, $"Format driver '{node.DriverName}' does not support option amendment");
            await amendable.AmendAsync(values).ConfigureAwait(false);
        }

        return 0;
    }
}
