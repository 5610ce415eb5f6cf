using SharpBlock.Drivers.Creation;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Raw;

/// <summary>The raw format's registration: it takes any file, so it probes lowest and wins only alone.</summary>
public sealed class RawFormat : BlockFormat
{
    public override BlockdevDriver Driver => BlockdevDriver.Raw;

    public override int Probe(ReadOnlySpan<byte> head, string fileName) => 1;

    public override async ValueTask<BlockNode> OpenAsync(BlockOpenContext context, CancellationToken cancellationToken)
    {
        var o = context.Options.Raw ?? throw new BlockException(Errno.EINVAL, "Missing raw options");
        var file = await context.OpenChildAsync(o.File, cancellationToken).ConfigureAwait(false);
        return new RawNode(file, context.Settings);
    }

    public override BlockdevOptions OptionsOver(BlockdevRef file) =>
        new() { Driver = BlockdevDriver.Raw, Raw = new BlockdevOptionsGenericFormat { File = file } };

    public override ValueTask CreateAsync(string path, long size, string? backingFile, string? backingFormat, CancellationToken cancellationToken)
    {
        if (backingFile != null)
            throw new BlockException(Errno.EINVAL, "Format 'raw' does not support backing files");
        return RawCreator.CreateAsync(path, size, cancellationToken: cancellationToken);
    }

    public override IReadOnlyList<ImageOption> CreateOptions => ImageCreateRaw.Options;

    public override ImageCreation PlanCreate(ImageOptionValues options) => RawCreation.Plan(options);

    /// <summary>A raw image stores every byte, so it needs its virtual size whatever the source holds.</summary>
    public override ValueTask<ImageMeasurement> MeasureAsync(ImageOptionValues options, long virtualSize, BlockNode? source, CancellationToken cancellationToken) =>
        ValueTask.FromResult(new ImageMeasurement(virtualSize, virtualSize));
}
