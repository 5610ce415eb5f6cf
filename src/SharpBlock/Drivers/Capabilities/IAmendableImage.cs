using SharpBlock.Drivers.Creation;

namespace SharpBlock.Drivers;

/// <summary>A format whose settings can change in place (img amend); its format lists them in <see cref="BlockFormat.AmendOptions"/>.</summary>
public interface IAmendableImage
{
    /// <summary>Checks the -o values with qemu-img's words and applies them; the size last.</summary>
    ValueTask AmendAsync(ImageOptionValues options, CancellationToken cancellationToken = default);
}
