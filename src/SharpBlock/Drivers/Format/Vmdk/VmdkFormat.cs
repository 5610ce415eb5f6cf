using System.Buffers.Binary;
using SharpBlock.Drivers.Creation;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Vmdk;

/// <summary>The vmdk format's registration: a sparse extent's magic or a text descriptor, opened by <see cref="VmdkNode"/>.</summary>
public sealed class VmdkFormat : BlockFormat
{
    public override BlockdevDriver Driver => BlockdevDriver.Vmdk;

    /// <summary>
    /// QEMU's probe: 100 for a KDMV or COWD magic, and 100 for a text file whose first line that is not a comment
    /// or blank is "version=1", "version=2" or "version=3" (LF or CRLF); anything else is not ours.
    /// </summary>
    public override int Probe(ReadOnlySpan<byte> head, string fileName)
    {
        if (head.Length < 4)
            return 0;
        uint magic = BinaryPrimitives.ReadUInt32LittleEndian(head);
        if (magic is VmdkLayout.Magic or VmdkLayout.Vmdk3Magic)
            return 100;
        int p = 0;
        while (p < head.Length)
        {
            if (head[p] == (byte)'#')
            {
                while (p < head.Length && head[p] != (byte)'\n')
                    p++;
                p++;
                continue;
            }

            if (head[p] == (byte)' ')
            {
                while (p < head.Length && head[p] == (byte)' ')
                    p++;
                if (p < head.Length && head[p] == (byte)'\r')
                    p++;
                // Only blank lines may come before the version line.
                if (p == head.Length || head[p] != (byte)'\n')
                    return 0;
                p++;
                continue;
            }

            var rest = head[p..];
            foreach (var v in (ReadOnlySpan<byte>)"123"u8)
            {
                if (rest.StartsWith([.. "version="u8, v, (byte)'\n']) || rest.StartsWith([.. "version="u8, v, (byte)'\r', (byte)'\n']))
                    return 100;
            }

            return 0;
        }

        return 0;
    }

    public override async ValueTask<BlockNode> OpenAsync(BlockOpenContext context, CancellationToken cancellationToken)
    {
        var o = context.Options.Vmdk ?? throw new BlockException(Errno.EINVAL, "Missing vmdk options");
        var file = await context.OpenChildAsync(o.File, cancellationToken).ConfigureAwait(false);
        var node = await VmdkNode.OpenAsync(context, file, cancellationToken).ConfigureAwait(false);
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
        new() { Driver = BlockdevDriver.Vmdk, Vmdk = new BlockdevOptionsGenericCOWFormat { File = file } };

    public override bool HasBackingFiles => true;

    /// <summary>convert -c may target vmdk (only a streamOptimized image actually compresses), as qemu-img allows.</summary>
    public override bool CompressedWrites => true;

    public override bool SetBacking(BlockdevOptions options, BlockdevRef backing)
    {
        if (options.Vmdk is not { } v)
            return false;
        v.Backing = BlockdevRefOrNull.From(backing);
        return true;
    }

    public override ValueTask CreateAsync(string path, long size, string? backingFile, string? backingFormat, CancellationToken cancellationToken) =>
        VmdkCreator.CreateAsync(path, new VmdkCreateOptions { Size = size, BackingFile = backingFile, BackingFormat = backingFile != null ? backingFormat : null }, cancellationToken);

    public override IReadOnlyList<ImageOption> CreateOptions => ImageCreateVmdk.Options;

    public override ImageCreation PlanCreate(ImageOptionValues options) => VmdkCreation.Plan(options);

    /// <summary>qemu-img has no size arithmetic for vmdk; refused in its words.</summary>
    public override ValueTask<ImageMeasurement> MeasureAsync(ImageOptionValues options, long virtualSize, BlockNode? source, CancellationToken cancellationToken) =>
        throw new BlockException(Errno.EOPNOTSUPP, "Block driver 'vmdk' does not support size measurement");
}
