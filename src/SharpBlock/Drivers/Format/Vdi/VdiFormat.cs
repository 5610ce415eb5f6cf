using System.Buffers.Binary;
using SharpBlock.Drivers.Creation;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Vdi;

/// <summary>The VDI format's registration: probed by its signature, as QEMU does, with a whole header in view.</summary>
public sealed class VdiFormat : BlockFormat
{
    public override BlockdevDriver Driver => BlockdevDriver.Vdi;

    /// <summary>QEMU's score: 100 for the signature, looked for only when a whole header was read.</summary>
    public override int Probe(ReadOnlySpan<byte> head, string fileName) =>
        head.Length >= VdiHeader.Size && BinaryPrimitives.ReadUInt32LittleEndian(head[VdiHeader.SignatureOffset..]) == VdiLayout.Signature ? 100 : 0;

    public override async ValueTask<BlockNode> OpenAsync(BlockOpenContext context, CancellationToken cancellationToken)
    {
        var o = context.Options.Vdi ?? throw new BlockException(Errno.EINVAL, "Missing vdi options");
        var file = await context.OpenChildAsync(o.File, cancellationToken).ConfigureAwait(false);
        return await VdiNode.OpenAsync(file, context.Settings, cancellationToken).ConfigureAwait(false);
    }

    public override BlockdevOptions OptionsOver(BlockdevRef file) =>
        new() { Driver = BlockdevDriver.Vdi, Vdi = new BlockdevOptionsGenericFormat { File = file } };

    public override ValueTask CreateAsync(string path, long size, string? backingFile, string? backingFormat, CancellationToken cancellationToken)
    {
        if (backingFile != null)
            throw new BlockException(Errno.EINVAL, "Backing file not supported for file format 'vdi'");
        return VdiCreator.CreateAsync(path, size, isStatic: false, cancellationToken);
    }

    public override IReadOnlyList<ImageOption> CreateOptions => ImageCreateVdi.Options;

    public override ImageCreation PlanCreate(ImageOptionValues options) => VdiCreation.Plan(options);
}
