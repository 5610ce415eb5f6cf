using SharpBlock.Drivers.Creation;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Parallels;

/// <summary>A new Parallels image read from its -o values, not yet written.</summary>
internal sealed class ParallelsCreation : ImageCreation
{
    private ulong _clusterSize;

    public static ParallelsCreation Plan(ImageOptionValues values)
    {
        var o = ImageCreateParallels.Read(values);
        return new ParallelsCreation { Size = ImageSizes.Required(o.Size), _clusterSize = o.ClusterSize ?? ParallelsLayout.DefaultClusterSize };
    }

    /// <summary>qemu-img always shows the cluster size, given or not, as given (before rounding).</summary>
    public override string Describe(string fileName) =>
        FormattableString.Invariant($"Formatting '{fileName}', fmt=parallels size={Size} cluster_size={_clusterSize}");

    public override void Validate() => ParallelsCreator.Validate(Size, _clusterSize);

    public override ValueTask CreateAsync(string path, CancellationToken cancellationToken) =>
        ParallelsCreator.CreateAsync(path, Size, _clusterSize, cancellationToken);
}
