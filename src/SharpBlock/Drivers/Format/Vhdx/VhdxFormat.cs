using SharpBlock.Drivers.Creation;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Vhdx;

/// <summary>The vhdx format's registration: probed by its "vhdxfile" signature, opened by <see cref="VhdxNode"/>.</summary>
public sealed class VhdxFormat : BlockFormat
{
    public override BlockdevDriver Driver => BlockdevDriver.Vhdx;

    /// <summary>QEMU's score for the file identifier's signature.</summary>
    public override int Probe(ReadOnlySpan<byte> head, string fileName) => head.StartsWith(VhdxLayout.FileSignature) ? 100 : 0;

    public override async ValueTask<BlockNode> OpenAsync(BlockOpenContext context, CancellationToken cancellationToken)
    {
        var o = context.Options.Vhdx ?? throw new BlockException(Errno.EINVAL, "Missing vhdx options");
        var file = await context.OpenChildAsync(o.File, cancellationToken).ConfigureAwait(false);
        return await VhdxNode.OpenAsync(file, context.Settings, cancellationToken).ConfigureAwait(false);
    }

    public override BlockdevOptions OptionsOver(BlockdevRef file) =>
        new() { Driver = BlockdevDriver.Vhdx, Vhdx = new BlockdevOptionsGenericFormat { File = file } };

    public override ValueTask CreateAsync(string path, long size, string? backingFile, string? backingFormat, CancellationToken cancellationToken)
    {
        if (backingFile != null)
            throw new BlockException(Errno.EINVAL, "Backing file not supported for file format 'vhdx'");
        return VhdxCreator.CreateAsync(path, VhdxCreateOptions.FromGiven(size, null, null, false, true), cancellationToken);
    }

    public override IReadOnlyList<ImageOption> CreateOptions => ImageCreateVhdx.Options;

    public override ImageCreation PlanCreate(ImageOptionValues options) => VhdxCreation.Plan(options);

    /// <summary>qemu-img 7.2 cannot measure vhdx images; its refusal names the block driver.</summary>
    public override ValueTask<ImageMeasurement> MeasureAsync(ImageOptionValues options, long virtualSize, BlockNode? source, CancellationToken cancellationToken) =>
        throw new BlockException(Errno.EOPNOTSUPP, $"Block driver '{Name}' does not support size measurement");
}
