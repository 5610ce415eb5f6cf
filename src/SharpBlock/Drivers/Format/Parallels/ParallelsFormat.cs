using SharpBlock.Drivers.Creation;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Parallels;

/// <summary>The Parallels format's registration: probed by either magic with version 2, as QEMU does.</summary>
public sealed class ParallelsFormat : BlockFormat
{
    public override BlockdevDriver Driver => BlockdevDriver.Parallels;

    /// <summary>QEMU's score: 100 for a known magic with version 2 in a whole header.</summary>
    public override int Probe(ReadOnlySpan<byte> head, string fileName) => ParallelsHeader.IsParallels(head) ? 100 : 0;

    public override async ValueTask<BlockNode> OpenAsync(BlockOpenContext context, CancellationToken cancellationToken)
    {
        var o = context.Options.Parallels ?? throw new BlockException(Errno.EINVAL, "Missing parallels options");
        var file = await context.OpenChildAsync(o.File, cancellationToken).ConfigureAwait(false);
        return await ParallelsNode.OpenAsync(file, context.Settings, cancellationToken).ConfigureAwait(false);
    }

    public override BlockdevOptions OptionsOver(BlockdevRef file) =>
        new() { Driver = BlockdevDriver.Parallels, Parallels = new BlockdevOptionsGenericFormat { File = file } };

    public override ValueTask CreateAsync(string path, long size, string? backingFile, string? backingFormat, CancellationToken cancellationToken)
    {
        if (backingFile != null)
            throw new BlockException(Errno.EINVAL, "Backing file not supported for file format 'parallels'");
        return ParallelsCreator.CreateAsync(path, size, ParallelsLayout.DefaultClusterSize, cancellationToken);
    }

    public override IReadOnlyList<ImageOption> CreateOptions => ImageCreateParallels.Options;

    public override ImageCreation PlanCreate(ImageOptionValues options) => ParallelsCreation.Plan(options);
}
