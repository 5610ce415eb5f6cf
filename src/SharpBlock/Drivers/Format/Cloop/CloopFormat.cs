using SharpBlock.Drivers.Creation;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Cloop;

/// <summary>The cloop format's registration: read-only, probed by its shell-script preamble as QEMU does.</summary>
public sealed class CloopFormat : BlockFormat
{
    public override BlockdevDriver Driver => BlockdevDriver.Cloop;

    /// <summary>QEMU's score: 2 when the file starts with the V2 script and is longer than it.</summary>
    public override int Probe(ReadOnlySpan<byte> head, string fileName) =>
        head.Length > CloopLayout.Magic.Length && head.StartsWith(CloopLayout.Magic) ? CloopLayout.ProbeScore : 0;

    public override async ValueTask<BlockNode> OpenAsync(BlockOpenContext context, CancellationToken cancellationToken)
    {
        var o = context.Options.Cloop ?? throw new BlockException(Errno.EINVAL, "Missing cloop options");
        CloopNode.RefuseWritable(context.Settings);
        var file = await context.OpenChildAsync(o.File, cancellationToken).ConfigureAwait(false);
        return await CloopNode.OpenAsync(file, context.Settings, cancellationToken).ConfigureAwait(false);
    }

    public override BlockdevOptions OptionsOver(BlockdevRef file) =>
        new() { Driver = BlockdevDriver.Cloop, Cloop = new BlockdevOptionsGenericFormat { File = file } };

    public override ValueTask CreateAsync(string path, long size, string? backingFile, string? backingFormat, CancellationToken cancellationToken) =>
        throw NoCreation();

    public override ImageCreation PlanCreate(ImageOptionValues options) => throw NoCreation();

    private static BlockException NoCreation() => new(Errno.EOPNOTSUPP, "Format driver 'cloop' does not support image creation");
}
