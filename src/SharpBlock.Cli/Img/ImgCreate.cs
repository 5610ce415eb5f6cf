using SharpBlock.Drivers;

namespace SharpBlock.Cli.Img;

/// <summary>`img create [-f FMT] [-o OPTIONS] [-b BACKING [-F FMT]] [-q] FILE [SIZE]`: any registered format, its -o options from its own table.</summary>
internal static class ImgCreate
{
    public static async Task<int> RunAsync(string[] argv)
    {
        var a = ImgArgs.Parse(argv, "fobF", "quh", ["object"], []);
        var format = ImgNewImage.Format(a.Get("-f") ?? "raw");
        if (ImgOptionHelp.Requested(a.GetAll("-o")))
            return ImgOptionHelp.PrintCreate(format);
        var values = ImgNewImage.Options(format, a.GetAll("-o"));
        ImgNewImage.SetBacking(format, values, a.Get("-b"), a.Get("-F"));
        if (a.Positional.Count < 1)
            throw ImgUsageException.Syntax("Expecting image file name");
        string path = a.Positional[0];
        if (a.Positional.Count >= 2)
            values.Set("size", ImgArgs.ParseSize(a.Positional[1]).ToString(System.Globalization.CultureInfo.InvariantCulture));
        else if (values.Get("size") is { } s)
            ImgArgs.ParseSize(s);
        if (a.Positional.Count > 2)
            throw new ImgUsageException("Unexpected argument: " + a.Positional[2]);

        string? backing = values.Get("backing_file");
        string? backingFmt = values.Get("backing_fmt");
        // qemu-img 7.2 refuses to guess a backing file's format (a probed raw file can pass for anything), -u or not.
        if (backing != null && backingFmt == null)
            throw new ImgUsageException($"{path}: Backing file specified without backing format");

        // Unless -u says the backing file may be missing, it must open (its whole chain), as qemu-img checks
        // before it writes anything; without a size the image takes the backing file's.
        if (backing != null && (!a.Has("-u") || !values.Has("size")))
        {
            string resolved = BackingFiles.Resolve(path, backing);
            (Graph.BlockGraph Graph, Graph.BlockNode Node) opened;
            try
            {
                opened = await ImgImage.OpenAsync(resolved, backingFmt, readOnly: true, forceShare: true).ConfigureAwait(false);
            }
            catch (Errors.BlockException ex)
            {
                // The failure in the backing driver's words (not under the backing file's name), then qemu-img's line.
                string why = ex is Errors.ImageOpenException && ex.InnerException is Errors.BlockException inner ? inner.Message : ex.Message;
                throw new ImgUsageException($"{path}: {why}\nCould not open backing image.");
            }

            await using (opened.Graph.ConfigureAwait(false))
            {
                if (!values.Has("size"))
                    values.Set("size", opened.Node.Length.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        if (!values.Has("size"))
            throw new ImgUsageException("Image creation needs a size parameter");

        // Only the header records encryption, so the key is not needed here; a named secret must exist.
        ImgEncryptOptions.FindKey(values, ImgSecrets.Parse(a.GetAll("--object")));
        await ImgNewImage.CreateAsync(format, values, path, a.Has("-q")).ConfigureAwait(false);
        return 0;
    }
}
