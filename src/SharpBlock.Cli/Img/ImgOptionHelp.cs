namespace SharpBlock.Cli.Img;

/// <summary>
/// "-o help" (or "-o ?") of create, convert and amend: the -o options a format takes, one per line as
/// "name=&lt;type&gt;", then exit code 0. Only options this tool acts on are listed.
/// </summary>
internal static class ImgOptionHelp
{
    private static readonly (string Name, string Type, string About)[] Qcow2Create =
    [
        ("backing_file", "str", "Image this one is a layer on top of"),
        ("backing_fmt", "str", "Format of the backing file (required with backing_file)"),
        ("cluster_size", "size", "Cluster size: a power of two from 512 to 2M"),
        ("compat", "str", "On-disk version: 0.10 (v2) or 1.1 (v3)"),
        ("compression_type", "str", "Codec of compressed clusters (zlib)"),
        ("encrypt.format", "str", "Encryption format (aes)"),
        ("encrypt.key-secret", "str", "Id of the --object secret holding the key"),
        ("encryption", "bool (on/off)", "Same as encrypt.format=aes"),
        ("extended_l2", "bool (on/off)", "Subcluster allocation (off only)"),
        ("lazy_refcounts", "bool (on/off)", "Defer refcount updates until the image is closed"),
        ("preallocation", "str", "off, metadata, falloc or full"),
        ("refcount_bits", "num", "Bits per refcount entry: a power of two up to 64"),
        ("size", "size", "Virtual size of the image"),
    ];

    private static readonly (string Name, string Type, string About)[] RawCreate =
    [
        ("preallocation", "str", "off, falloc or full"),
        ("size", "size", "Virtual size of the image"),
    ];

    private static readonly (string Name, string Type, string About)[] Qcow2Amend =
    [
        ("compat", "str", "On-disk version: 0.10 (v2) or 1.1 (v3)"),
        ("lazy_refcounts", "bool (on/off)", "Defer refcount updates until the image is closed"),
        ("refcount_bits", "num", "Bits per refcount entry: a power of two up to 64"),
    ];

    /// <summary>True when one item of the -o lists is "help" or "?".</summary>
    public static bool Requested(IReadOnlyList<string> lists)
    {
        foreach (string list in lists)
        {
            foreach (string item in list.Split(','))
            {
                if (item is "help" or "?")
                    return true;
            }
        }

        return false;
    }

    /// <summary>The creation options of <paramref name="format"/> (create -f, convert -O).</summary>
    public static int PrintCreate(string format)
    {
        var table = format switch
        {
            "qcow2" => Qcow2Create,
            "raw" => RawCreate,
            _ => throw new ImgUsageException($"Unknown file format '{format}'"),
        };
        Console.Out.WriteLine($"Supported {format} options:");
        Print(table);
        return 0;
    }

    /// <summary>The options amend can change in an image of <paramref name="format"/>.</summary>
    public static int PrintAmend(string format)
    {
        if (format != "qcow2")
            throw new ImgUsageException($"Format driver '{format}' does not support option amendment");
        Console.Out.WriteLine($"Amend options for '{format}':");
        Print(Qcow2Amend);
        return 0;
    }

    private static void Print((string Name, string Type, string About)[] table)
    {
        foreach (var (name, type, about) in table)
        {
            string head = $"  {name}=<{type}>";
            Console.Out.WriteLine($"{head.PadRight(24)} - {about}");
        }
    }
}
