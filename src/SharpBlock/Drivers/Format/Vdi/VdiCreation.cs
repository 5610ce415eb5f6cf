using SharpBlock.Drivers.Creation;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Vdi;

/// <summary>A new VDI image read from its -o values, not yet written.</summary>
internal sealed class VdiCreation : ImageCreation
{
    private bool _static;

    public static VdiCreation Plan(ImageOptionValues values)
    {
        var o = ImageCreateVdi.Read(values);
        return new VdiCreation { Size = ImageSizes.Required(o.Size), _static = o.Static ?? false };
    }

    /// <summary>qemu-img always shows static, given or not.</summary>
    public override string Describe(string fileName) =>
        $"Formatting '{fileName}', fmt=vdi size={Size} static={(_static ? "on" : "off")}";

    public override void Validate() => VdiCreator.Validate(Size);

    public override ValueTask CreateAsync(string path, CancellationToken cancellationToken) =>
        VdiCreator.CreateAsync(path, Size, _static, cancellationToken);
}
