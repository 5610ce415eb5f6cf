using System.Text;
using SharpBlock.Drivers.Creation;
using SharpBlock.Errors;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Vmdk;

/// <summary>A new VMDK image read from its -o values (<see cref="VmdkFormat.PlanCreate"/>), not yet written.</summary>
internal sealed class VmdkCreation : ImageCreation
{
    private readonly ImageCreateVmdk _given;
    private string? _badSubformat;

    private VmdkCreation(ImageCreateVmdk given, VmdkCreateOptions options)
    {
        _given = given;
        Options = options;
    }

    public VmdkCreateOptions Options { get; }

    public static VmdkCreation Plan(ImageOptionValues values)
    {
        var o = ImageCreateVmdk.Read(values);
        var sub = VmdkSubformat.MonolithicSparse;
        bool known = o.Subformat == null || VmdkCreateOptions.TryParse(o.Subformat, out sub);
        var options = new VmdkCreateOptions
        {
            Size = ImageSizes.Required(o.Size),
            Subformat = sub,
            AdapterType = o.AdapterType ?? "ide",
            HwVersion = o.Hwversion,
            Compat6 = o.Compat6 ?? false,
            ToolsVersion = o.Toolsversion ?? "2147483647",
            ZeroedGrain = o.ZeroedGrain ?? false,
            BackingFile = o.BackingFile,
            BackingFormat = o.BackingFmt,
        };
        return new VmdkCreation(o, options)
        {
            Size = options.Size,
            BackingFile = options.BackingFile,
            BackingFormat = options.BackingFormat,
            _badSubformat = known ? null : o.Subformat,
        };
    }

    /// <summary>qemu-img's line: given options as given, compat6 and hwversion always, in its order.</summary>
    public override string Describe(string fileName)
    {
        var o = _given;
        var sb = new StringBuilder();
        sb.Append("Formatting '").Append(fileName).Append("', fmt=vmdk size=").Append(Size);
        if (o.AdapterType != null)
            sb.Append(" adapter_type=").Append(o.AdapterType);
        if (o.BackingFile != null)
            sb.Append(" backing_file=").Append(o.BackingFile);
        if (o.BackingFmt != null)
            sb.Append(" backing_fmt=").Append(o.BackingFmt);
        sb.Append(" compat6=").Append(o.Compat6 == true ? "on" : "off");
        sb.Append(" hwversion=").Append(o.Hwversion ?? "undefined");
        if (o.Subformat != null)
            sb.Append(" subformat=").Append(o.Subformat);
        if (o.Toolsversion != null)
            sb.Append(" toolsversion=").Append(o.Toolsversion);
        if (o.ZeroedGrain is { } z)
            sb.Append(" zeroed_grain=").Append(z ? "on" : "off");
        return sb.ToString();
    }

    public override void Validate()
    {
        if (Options.Compat6 && Options.HwVersion != null)
            throw new BlockException(Errno.EINVAL, "compat6 cannot be enabled with hwversion set");
        if (_badSubformat != null)
            throw new BlockException(Errno.EINVAL, $"invalid parameter value: {_badSubformat}");
        VmdkCreator.Validate(Options);
    }

    public override async ValueTask CreateAsync(string path, CancellationToken cancellationToken) =>
        await VmdkCreator.CreateAsync(path, Options, cancellationToken).ConfigureAwait(false);
}
