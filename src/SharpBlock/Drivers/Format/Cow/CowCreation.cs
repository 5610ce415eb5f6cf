using SharpBlock.Drivers.Creation;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Cow;

/// <summary>A new cow image read from its -o values, not yet written.</summary>
internal sealed class CowCreation : ImageCreation
{
    public static CowCreation Plan(ImageOptionValues values)
    {
        var o = ImageCreateCow.Read(values);
        return new CowCreation { Size = ImageSizes.Required(o.Size), BackingFile = o.BackingFile, BackingFormat = o.BackingFmt };
    }

    public override string Describe(string fileName) =>
        $"Formatting '{fileName}', fmt=cow size={Size}" + (BackingFile == null ? "" : $" backing_file={BackingFile}") + (BackingFormat == null ? "" : $" backing_fmt={BackingFormat}");

    public override void Validate() => CowCreator.Validate(Size, BackingFile);

    public override ValueTask CreateAsync(string path, CancellationToken cancellationToken) =>
        CowCreator.CreateAsync(path, Size, BackingFile, cancellationToken);
}
