using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Bochs;

/// <summary>The Bochs format's registration: read-only, probed by magic, type, subtype and version as QEMU does.</summary>
public sealed class BochsFormat : BlockFormat
{
    public override BlockdevDriver Driver => BlockdevDriver.Bochs;

    public override int Probe(ReadOnlySpan<byte> head, string fileName) => BochsHeader.IsGrowingRedolog(head) ? 100 : 0;

    public override async ValueTask<BlockNode> OpenAsync(BlockOpenContext context, CancellationToken cancellationToken)
    {
        var o = context.Options.Bochs ?? throw new BlockException(Errno.EINVAL, "Missing bochs options");
        // QEMU's bochs driver cannot write; refused before the file is opened for writing.
        if (!context.Settings.ReadOnly)
            throw new BlockException(Errno.EACCES, "Image is read-only");
        var file = await context.OpenChildAsync(o.File, cancellationToken).ConfigureAwait(false);
        return await BochsNode.OpenAsync(file, context.Settings, cancellationToken).ConfigureAwait(false);
    }

    public override ValueTask CreateAsync(string path, long size, string? backingFile, string? backingFormat, CancellationToken cancellationToken) =>
        throw NoCreation();

    public override Creation.ImageCreation PlanCreate(Creation.ImageOptionValues options) => throw NoCreation();

    private static BlockException NoCreation() => new(Errno.EOPNOTSUPP, "Format driver 'bochs' does not support image creation");

    public override BlockdevOptions OptionsOver(BlockdevRef file) =>
        new() { Driver = BlockdevDriver.Bochs, Bochs = new BlockdevOptionsGenericFormat { File = file } };
}
