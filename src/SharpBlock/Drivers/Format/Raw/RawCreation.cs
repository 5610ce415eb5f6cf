using SharpBlock.Drivers.Creation;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Raw;

/// <summary>A new raw image: a file of the size, preallocated as asked.</summary>
internal sealed class RawCreation : ImageCreation
{
    private PreallocMode? _preallocation;

    public static RawCreation Plan(ImageOptionValues values)
    {
        var o = ImageCreateRaw.Read(values);
        return new RawCreation { Size = ImageSizes.Required(o.Size), _preallocation = o.Preallocation };
    }

    public override string Describe(string fileName) => _preallocation is { } p
        ? $"Formatting '{fileName}', fmt=raw size={Size} preallocation={p.ToWire()}"
        : $"Formatting '{fileName}', fmt=raw size={Size}";

    public override ValueTask CreateAsync(string path, CancellationToken cancellationToken) =>
        RawCreator.CreateAsync(path, Size, _preallocation.ToPreallocation(), cancellationToken);
}
