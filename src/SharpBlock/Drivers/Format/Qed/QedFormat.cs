using System.Buffers.Binary;
using SharpBlock.Drivers.Creation;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Qed;

/// <summary>The qed format's registration: probed by its magic, opened by <see cref="QedNode"/> with its backing chain.</summary>
public sealed class QedFormat : BlockFormat
{
    public override BlockdevDriver Driver => BlockdevDriver.Qed;

    /// <summary>QEMU's score for the "QED\0" magic.</summary>
    public override int Probe(ReadOnlySpan<byte> head, string fileName) =>
        head.Length >= QedHeader.Size && BinaryPrimitives.ReadUInt32LittleEndian(head) == QedLayout.Magic ? 100 : 0;

    public override async ValueTask<BlockNode> OpenAsync(BlockOpenContext context, CancellationToken cancellationToken)
    {
        var o = context.Options.Qed ?? throw new BlockException(Errno.EINVAL, "Missing qed options");
        var file = await context.OpenChildAsync(o.File, cancellationToken).ConfigureAwait(false);
        var node = await QedNode.OpenAsync(file, context.Settings, cancellationToken).ConfigureAwait(false);
        try
        {
            var backing = await BackingFiles.OpenAsync(context, o.Backing, file.Filename, node.BackingFileName, node.BackingFormat, cancellationToken).ConfigureAwait(false);
            if (backing != null)
                node.AttachBacking(backing);
            return node;
        }
        catch
        {
            await node.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public override BlockdevOptions OptionsOver(BlockdevRef file) =>
        new() { Driver = BlockdevDriver.Qed, Qed = new BlockdevOptionsGenericCOWFormat { File = file } };

    public override bool HasBackingFiles => true;

    public override bool SetBacking(BlockdevOptions options, BlockdevRef backing)
    {
        if (options.Qed is not { } q)
            return false;
        q.Backing = BlockdevRefOrNull.From(backing);
        return true;
    }

    public override ValueTask CreateAsync(string path, long size, string? backingFile, string? backingFormat, CancellationToken cancellationToken) =>
        QedCreator.CreateAsync(path, new QedCreateOptions { Size = size, BackingFile = backingFile, BackingFormat = backingFile != null ? backingFormat : null }, cancellationToken);

    public override IReadOnlyList<ImageOption> CreateOptions => ImageCreateQed.Options;

    public override ImageCreation PlanCreate(ImageOptionValues options) => QedCreation.Plan(options);

    /// <summary>qemu-img has no size arithmetic for qed; refused in its words.</summary>
    public override ValueTask<ImageMeasurement> MeasureAsync(ImageOptionValues options, long virtualSize, BlockNode? source, CancellationToken cancellationToken) =>
        throw new BlockException(Errno.EOPNOTSUPP, "Block driver 'qed' does not support size measurement");
}
