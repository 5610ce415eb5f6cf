namespace SharpBlock.Drivers.Creation;

/// <summary>How an -o value is typed, which decides how it is checked and how "-o help" shows it.</summary>
public enum ImageOptionType
{
    String,
    Size,
    Number,
    Bool,
}

/// <summary>
/// One -o option of a format (create, convert -O, amend, measure): its name as qemu-img spells it, its type
/// and its help line. The tables are generated from the image-*.qapi schema files and their member docs.
/// </summary>
public sealed record ImageOption(string Name, ImageOptionType Type, string Help)
{
    /// <summary>The type as "-o help" shows it, in qemu-img's words.</summary>
    public string TypeName => Type switch
    {
        ImageOptionType.Size => "size",
        ImageOptionType.Number => "num",
        ImageOptionType.Bool => "bool (on/off)",
        _ => "str",
    };

    /// <summary>The option called <paramref name="name"/> in a format's table, or null.</summary>
    public static ImageOption? Find(IReadOnlyList<ImageOption> options, string name)
    {
        foreach (var o in options)
        {
            if (o.Name == name)
                return o;
        }

        return null;
    }
}
