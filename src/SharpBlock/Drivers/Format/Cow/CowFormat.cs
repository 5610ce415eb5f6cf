using System.Buffers.Binary;
using SharpBlock.Drivers.Creation;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Cow;

/// <summary>The cow (User-Mode Linux COW v2) format's registration, opened by <see cref="CowNode"/>.</summary>
public sealed class CowFormat : BlockFormat
{
    public override BlockdevDriver Driver => BlockdevDriver.Cow;

    /// <summary>The score QEMU's cow driver gave: 100 for the magic and version 2 with a whole header in view.</summary>
    public override int Probe(ReadOnlySpan<byte> head, string fileName) =>
        head.Length >= CowHeader.Size && BinaryPrimitives.ReadUInt32BigEndian(head) == CowLayout.Magic
            && BinaryPrimitives.ReadUInt32BigEndian(head[4..]) == CowLayout.Version ? 100 : 0;

    public override async ValueTask<BlockNode> OpenAsync(BlockOpenContext context, CancellationToken cancellationToken)
    {
        var o = context.Options.Cow ?? throw new BlockException(Errno.EINVAL, "Missing cow options");
        var file = await context.OpenChildAsync(o.File, cancellationToken).ConfigureAwait(false);
        CowNode node;
        try
        {
            node = await CowNode.OpenAsync(file, context.Settings, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await file.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        try
        {
            // cow records no backing format: the backing file is probed.
            var backing = await BackingFiles.OpenAsync(context, o.Backing, file.Filename, node.BackingFileName, null, cancellationToken).ConfigureAwait(false);
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
        new() { Driver = BlockdevDriver.Cow, Cow = new BlockdevOptionsGenericCOWFormat { File = file } };

    public override bool HasBackingFiles => true;

    public override bool SetBacking(BlockdevOptions options, BlockdevRef backing)
    {
        if (options.Cow is not { } c)
            return false;
        c.Backing = BlockdevRefOrNull.From(backing);
        return true;
    }

    public override ValueTask CreateAsync(string path, long size, string? backingFile, string? backingFormat, CancellationToken cancellationToken) =>
        CowCreator.CreateAsync(path, size, backingFile, cancellationToken);

    public override IReadOnlyList<ImageOption> CreateOptions => ImageCreateCow.Options;

    public override ImageCreation PlanCreate(ImageOptionValues options) => CowCreation.Plan(options);

    public override ValueTask<ImageMeasurement> MeasureAsync(ImageOptionValues options, long virtualSize, BlockNode? source, CancellationToken cancellationToken) =>
        throw new BlockException(Errno.EOPNOTSUPP, "Block driver 'cow' does not support size measurement");
}
