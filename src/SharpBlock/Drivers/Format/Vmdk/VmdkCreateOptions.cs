namespace SharpBlock.Drivers.Format.Vmdk;

/// <summary>The VMDK subformats qemu-img creates.</summary>
public enum VmdkSubformat
{
    MonolithicSparse,
    MonolithicFlat,
    TwoGbMaxExtentSparse,
    TwoGbMaxExtentFlat,
    StreamOptimized,
}

/// <summary>Settings of a new VMDK image, with qemu-img's defaults.</summary>
public sealed record VmdkCreateOptions
{
    public required long Size { get; init; }
    public VmdkSubformat Subformat { get; init; } = VmdkSubformat.MonolithicSparse;
    public string AdapterType { get; init; } = "ide";
    public string? HwVersion { get; init; }
    public bool Compat6 { get; init; }
    public string ToolsVersion { get; init; } = "2147483647";
    public bool ZeroedGrain { get; init; }
    public string? BackingFile { get; init; }
    public string? BackingFormat { get; init; }

    public bool Flat => Subformat is VmdkSubformat.MonolithicFlat or VmdkSubformat.TwoGbMaxExtentFlat;

    public bool Split => Subformat is VmdkSubformat.TwoGbMaxExtentFlat or VmdkSubformat.TwoGbMaxExtentSparse;

    public static string Name(VmdkSubformat s) => s switch
    {
        VmdkSubformat.MonolithicFlat => "monolithicFlat",
        VmdkSubformat.TwoGbMaxExtentSparse => "twoGbMaxExtentSparse",
        VmdkSubformat.TwoGbMaxExtentFlat => "twoGbMaxExtentFlat",
        VmdkSubformat.StreamOptimized => "streamOptimized",
        _ => "monolithicSparse",
    };

    public static bool TryParse(string text, out VmdkSubformat s)
    {
        foreach (var v in Enum.GetValues<VmdkSubformat>())
        {
            if (Name(v) == text)
            {
                s = v;
                return true;
            }
        }

        s = default;
        return false;
    }
}
