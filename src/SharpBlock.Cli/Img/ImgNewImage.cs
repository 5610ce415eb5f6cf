using SharpBlock.Drivers;
using SharpBlock.Drivers.Creation;
using SharpBlock.Graph;

namespace SharpBlock.Cli.Img;

/// <summary>
/// What create, convert, dd and measure share about the image they make: the format by name, its -o values
/// checked against the format's own table, and -b/-F put in as its backing options. Nothing here knows a format.
/// </summary>
internal static class ImgNewImage
{
    public static BlockFormat Format(string name) =>
        BlockDriverRegistry.Default.FindFormat(name) ?? throw new ImgUsageException($"Unknown file format '{name}'");

    /// <summary>The -o lists read and checked (names and types) against what <paramref name="format"/> takes.</summary>
    public static ImageOptionValues Options(BlockFormat format, IReadOnlyList<string> lists)
    {
        var values = ImageOptionValues.Parse(lists);
        values.Check(format.CreateOptions);
        return values;
    }

    /// <summary>-b and -F as the backing options; a format that cannot have a backing file refuses -b in qemu-img's words.</summary>
    public static void SetBacking(BlockFormat format, ImageOptionValues values, string? backingFile, string? backingFormat)
    {
        if (backingFile != null)
        {
            if (ImageOption.Find(format.CreateOptions, "backing_file") == null)
                throw new ImgUsageException($"Backing file not supported for file format '{format.Name}'");
            values.Set("backing_file", backingFile);
        }

        if (backingFormat != null && ImageOption.Find(format.CreateOptions, "backing_fmt") != null)
            values.Set("backing_fmt", backingFormat);
    }

    /// <summary>Plans the image, prints qemu-img's "Formatting" line unless quiet, checks it, and writes it under the target's lock.</summary>
    public static async Task CreateAsync(BlockFormat format, ImageOptionValues values, string path, bool quiet)
    {
        var plan = format.PlanCreate(values);
        if (!quiet)
            Console.Out.WriteLine(plan.Describe(path));
        plan.Validate();
        await ImgTargetLock.CreateAsync(path, async () => await plan.CreateAsync(path, CancellationToken.None).ConfigureAwait(false)).ConfigureAwait(false);
    }
}
