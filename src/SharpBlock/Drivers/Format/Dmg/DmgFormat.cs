using SharpBlock.Drivers.Creation;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Dmg;

/// <summary>The dmg format's registration: read-only, probed as QEMU probes it, by the file name alone.</summary>
public sealed class DmgFormat : BlockFormat
{
    public override BlockdevDriver Driver => BlockdevDriver.Dmg;

    /// <summary>QEMU's score: 2 for a name ending in ".dmg" (the trailer sits at the end, out of the probe's view).</summary>
    public override int Probe(ReadOnlySpan<byte> head, string fileName) =>
        fileName.Length > 4 && fileName.EndsWith(".dmg", StringComparison.Ordinal) ? 2 : 0;

    public override async ValueTask<BlockNode> OpenAsync(BlockOpenContext context, CancellationToken cancellationToken)
    {
        var o = context.Options.Dmg ?? throw new BlockException(Errno.EINVAL, "Missing dmg options");
        DmgNode.RefuseWritable(context.Settings);
        var file = await context.OpenChildAsync(o.File, cancellationToken).ConfigureAwait(false);
        return await DmgNode.OpenAsync(file, context.Settings, cancellationToken).ConfigureAwait(false);
    }

    public override BlockdevOptions OptionsOver(BlockdevRef file) =>
        new() { Driver = BlockdevDriver.Dmg, Dmg = new BlockdevOptionsGenericFormat { File = file } };

    public override ValueTask CreateAsync(string path, long size, string? backingFile, string? backingFormat, CancellationToken cancellationToken) =>
        throw NoCreation();

    public override ImageCreation PlanCreate(ImageOptionValues options) => throw NoCreation();

    private static BlockException NoCreation() => new(Errno.EOPNOTSUPP, "Format driver 'dmg' does not support image creation");
}
