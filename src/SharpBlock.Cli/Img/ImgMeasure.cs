using System.Globalization;
using SharpBlock.Drivers.Creation;

namespace SharpBlock.Cli.Img;

/// <summary>
/// `img measure [--output=human|json] -O FMT [-o OPTIONS] (--size SIZE | [-f FMT] FILE)`: how large a new image
/// would be: "required" for the data the input actually holds, "fully allocated" if every cluster were written.
/// The figures are the output format's own (<see cref="SharpBlock.Drivers.BlockFormat.MeasureAsync"/>).
/// </summary>
internal static class ImgMeasure
{
    public static async Task<int> RunAsync(string[] argv)
    {
        var a = ImgArgs.Parse(argv, "fOol", "qU", ["output", "size", "object"], ["force-share", "image-opts"]);
        bool json = a.Json();
        var format = ImgNewImage.Format(a.Get("-O") ?? "raw");
        var values = ImgNewImage.Options(format, a.GetAll("-o"));
        ImageMeasurement m;
        if (a.Get("--size") is { } sizeText)
        {
            if (a.Positional.Count != 0)
                throw new ImgUsageException("--size N cannot be used together with a filename.");
            m = await format.MeasureAsync(values, ImgArgs.ParseSize(sizeText), null, CancellationToken.None).ConfigureAwait(false);
        }
        else
        {
            if (a.Positional.Count != 1)
                throw new ImgUsageException("Either --size N or one filename must be specified.");
            var (graph, source) = await ImgImage.OpenAsync(a, a.Positional[0], a.Get("-f"), readOnly: true).ConfigureAwait(false);
            await using (graph.ConfigureAwait(false))
            {
                if (a.Get("-l") is { } snapshot)
                    await ImgImage.LoadSnapshotAsync(source, snapshot).ConfigureAwait(false);
                m = await format.MeasureAsync(values, source.Length, source, CancellationToken.None).ConfigureAwait(false);
            }
        }

        if (json)
        {
            Console.Out.WriteLine("{");
            if (m.Bitmaps is { } b)
                Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"    \"bitmaps\": {b},"));
            Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"    \"required\": {m.Required},"));
            Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"    \"fully-allocated\": {m.FullyAllocated}"));
            Console.Out.WriteLine("}");
        }
        else
        {
            Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"required size: {m.Required}"));
            Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"fully allocated size: {m.FullyAllocated}"));
            if (m.Bitmaps is { } b)
                Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"bitmaps size: {b}"));
        }

        return 0;
    }
}
