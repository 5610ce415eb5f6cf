using SharpBlock.Drivers.Creation;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Vpc;

/// <summary>
/// The vpc (VHD) format's registration. It probes, as QEMU, by the footer copy at byte 0, so a fixed image
/// (footer only at the end) is not recognised without -f vpc.
/// </summary>
public sealed class VpcFormat : BlockFormat
{
    public override BlockdevDriver Driver => BlockdevDriver.Vpc;

    public override int Probe(ReadOnlySpan<byte> head, string fileName) =>
        head.Length >= 8 && head[..8].SequenceEqual(VpcLayout.FooterCookie) ? 100 : 0;

    public override async ValueTask<BlockNode> OpenAsync(BlockOpenContext context, CancellationToken cancellationToken)
    {
        var o = context.Options.Vpc ?? throw new BlockException(Errno.EINVAL, "Missing vpc options");
        var file = await context.OpenChildAsync(o.File, cancellationToken).ConfigureAwait(false);
        return await VpcNode.OpenAsync(file, context.Settings, cancellationToken).ConfigureAwait(false);
    }

    public override BlockdevOptions OptionsOver(BlockdevRef file) =>
        new() { Driver = BlockdevDriver.Vpc, Vpc = new BlockdevOptionsGenericFormat { File = file } };

    public override ValueTask CreateAsync(string path, long size, string? backingFile, string? backingFormat, CancellationToken cancellationToken)
    {
        if (backingFile != null)
            throw new BlockException(Errno.EINVAL, "Backing file not supported for file format 'vpc'");
        return VpcCreator.CreateAsync(path, new VpcCreateOptions(size), cancellationToken);
    }

    public override IReadOnlyList<ImageOption> CreateOptions => ImageCreateVpc.Options;

    public override ImageCreation PlanCreate(ImageOptionValues options) => VpcCreation.Plan(options);
}
