using System.Globalization;
using System.Text;
using SharpBlock.Drivers.Creation;
using SharpBlock.Errors;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Vhdx;

/// <summary>A new vhdx image read from its -o values, with qemu-img's defaults, rounding and refusals.</summary>
internal sealed class VhdxCreation : ImageCreation
{
    private readonly ImageCreateVhdx _given;

    private VhdxCreation(ImageCreateVhdx given) => _given = given;

    public static VhdxCreation Plan(ImageOptionValues values)
    {
        var o = ImageCreateVhdx.Read(values);
        return new VhdxCreation(o) { Size = ImageSizes.Required(o.Size) };
    }

    /// <summary>qemu-img's line shows the values as given (block_size=0 for the automatic choice), before any rounding.</summary>
    public override string Describe(string fileName)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"Formatting '{fileName}', fmt=vhdx size={Size} log_size={_given.LogSize ?? (ulong)VhdxLayout.DefaultLogSize} block_size={_given.BlockSize ?? 0}");
        if (_given.Subformat is { } sf)
            sb.Append(" subformat=").Append(sf);
        if (_given.BlockStateZero is { } z)
            sb.Append(" block_state_zero=").Append(z ? "on" : "off");
        return sb.ToString();
    }

    public VhdxCreateOptions Options() => VhdxCreateOptions.FromGiven(Size, _given.LogSize, _given.BlockSize, _given.Subformat == "fixed", _given.BlockStateZero ?? true);

    /// <summary>qemu-img prints its line before it refuses a subformat it does not know.</summary>
    public override void Validate()
    {
        if (_given.Subformat is { } sf && sf is not ("dynamic" or "fixed"))
            throw new BlockException(Errno.EINVAL, $"Parameter 'subformat' does not accept value '{sf}'");
        VhdxCreator.Validate(Options());
    }

    public override ValueTask CreateAsync(string path, CancellationToken cancellationToken) => VhdxCreator.CreateAsync(path, Options(), cancellationToken);
}
