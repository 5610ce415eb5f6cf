using System.Buffers.Binary;
using SharpBlock.Drivers.Creation;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Qcow;

/// <summary>The qcow (version 1) format's registration, opened by <see cref="QcowNode"/>.</summary>
public sealed class QcowFormat : BlockFormat
{
    public override BlockdevDriver Driver => BlockdevDriver.Qcow;

    /// <summary>QEMU's score: 100 for the magic with version 1 (qcow2 shares the magic and claims versions 2 and 3).</summary>
    public override int Probe(ReadOnlySpan<byte> head, string fileName) =>
        head.Length >= 8 && BinaryPrimitives.ReadUInt32BigEndian(head) == QcowLayout.Magic
            && BinaryPrimitives.ReadUInt32BigEndian(head[4..]) == QcowLayout.Version ? 100 : 0;

    public override async ValueTask<BlockNode> OpenAsync(BlockOpenContext context, CancellationToken cancellationToken)
    {
        var o = context.Options.Qcow ?? throw new BlockException(Errno.EINVAL, "Missing qcow options");
        var file = await context.OpenChildAsync(o.File, cancellationToken).ConfigureAwait(false);
        QcowNode node;
        try
        {
            node = await QcowNode.OpenAsync(file, context.Settings, cancellationToken).ConfigureAwait(false);
            if (o.Encrypt is { } encrypt)
                Unlock(context.Graph, node, encrypt);
        }
        catch
        {
            await file.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        try
        {
            // qcow records no backing format: the backing file is probed.
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

    /// <summary>Newer QEMU's encrypt.key-secret at open; without it the image opens and waits for block_passwd, as in 2.1.</summary>
    private static void Unlock(BlockGraph graph, QcowNode node, BlockdevQcowEncryption encrypt)
    {
        if (!node.Encrypted)
            throw new BlockException(Errno.EINVAL, "No encryption in image header, but options specified format 'aes'");
        string id = encrypt.KeySecret ?? throw new BlockException(Errno.EINVAL, "Parameter 'encrypt.key-secret' is required for cipher");
        node.SetEncryptionKey(graph.Secrets.Get(id));
    }

    public override BlockdevOptions OptionsOver(BlockdevRef file) =>
        new() { Driver = BlockdevDriver.Qcow, Qcow = new BlockdevOptionsQcow { File = file } };

    public override bool HasBackingFiles => true;

    public override bool CompressedWrites => true;

    public override bool SetBacking(BlockdevOptions options, BlockdevRef backing)
    {
        if (options.Qcow is not { } q)
            return false;
        q.Backing = BlockdevRefOrNull.From(backing);
        return true;
    }

    public override ValueTask CreateAsync(string path, long size, string? backingFile, string? backingFormat, CancellationToken cancellationToken) =>
        QcowCreator.CreateAsync(path, size, backingFile, cancellationToken: cancellationToken);

    public override IReadOnlyList<ImageOption> CreateOptions => ImageCreateQcow.Options;

    public override ImageCreation PlanCreate(ImageOptionValues options) => QcowCreation.Plan(options);

    /// <summary>qemu-img has no size arithmetic for qcow; refused in its words.</summary>
    public override ValueTask<ImageMeasurement> MeasureAsync(ImageOptionValues options, long virtualSize, BlockNode? source, CancellationToken cancellationToken) =>
        throw new BlockException(Errno.EOPNOTSUPP, "Block driver 'qcow' does not support size measurement");
}
