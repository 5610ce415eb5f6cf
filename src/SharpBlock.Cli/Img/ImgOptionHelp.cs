using SharpBlock.Drivers;
using SharpBlock.Drivers.Creation;

namespace SharpBlock.Cli.Img;

/// <summary>
/// "-o help" (or "-o ?") of create, convert and amend: the -o options a format takes, from its own table (the
/// image-*.qapi schema docs), one per line as "name=&lt;type&gt;", then exit code 0.
/// </summary>
internal static class ImgOptionHelp
{
    /// <summary>True when one item of the -o lists is "help" or "?".</summary>
    public static bool Requested(IReadOnlyList<string> lists) => ImageOptionValues.HelpRequested(lists);

    /// <summary>The creation options of <paramref name="format"/> (create -f, convert -O).</summary>
    public static int PrintCreate(BlockFormat format)
    {
        Console.Out.WriteLine($"Supported {format.Name} options:");
        Print(format.CreateOptions);
        return 0;
    }

    /// <summary>The options amend can change in an image of <paramref name="format"/>.</summary>
    public static int PrintAmend(BlockFormat format)
    {
        var options = format.AmendOptions ?? throw new ImgUsageException($"Format driver '{format.Name}' does not support option amendment");
        Console.Out.WriteLine($"Amend options for '{format.Name}':");
        Print(options);
        return 0;
    }

    private static void Print(IReadOnlyList<ImageOption> options)
    {
        foreach (var o in options.OrderBy(o => o.Name, StringComparer.Ordinal))
        {
            string head = $"  {o.Name}=<{o.TypeName}>";
            Console.Out.WriteLine($"{head.PadRight(24)} - {o.Help}");
        }
    }
}
