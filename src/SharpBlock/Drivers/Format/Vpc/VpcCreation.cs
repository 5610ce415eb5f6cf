using System.Text;
using SharpBlock.Drivers.Creation;
using SharpBlock.Errors;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Vpc;

/// <summary>A new VHD read from its -o values, not yet written.</summary>
internal sealed class VpcCreation : ImageCreation
{
    private string? _subformat;
    private bool? _forceSize;

    public static VpcCreation Plan(ImageOptionValues values)
    {
        var o = ImageCreateVpc.Read(values);
        return new VpcCreation { Size = ImageSizes.Required(o.Size), _subformat = o.Subformat, _forceSize = o.ForceSize };
    }

    private VpcCreateOptions Options => new(Size, _subformat == "fixed", _forceSize ?? false);

    /// <summary>qemu-img shows subformat and force_size only when given, in this order.</summary>
    public override string Describe(string fileName)
    {
        var sb = new StringBuilder();
        sb.Append("Formatting '").Append(fileName).Append("', fmt=vpc size=").Append(Size.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (_subformat != null)
            sb.Append(" subformat=").Append(_subformat);
        if (_forceSize is { } f)
            sb.Append(" force_size=").Append(f ? "on" : "off");
        return sb.ToString();
    }

    public override void Validate()
    {
        if (_subformat is not (null or "dynamic" or "fixed"))
            throw new BlockException(Errno.EINVAL, $"Parameter 'subformat' does not accept value '{_subformat}'");
        VpcCreator.Validate(Options);
    }

    public override ValueTask CreateAsync(string path, CancellationToken cancellationToken) =>
        VpcCreator.CreateAsync(path, Options, cancellationToken);
}
