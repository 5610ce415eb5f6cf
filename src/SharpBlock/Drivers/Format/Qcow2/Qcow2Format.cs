using System.Buffers.Binary;
using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>The qcow2 format's registration: probed by its magic, opened by <see cref="Qcow2Driver"/>.</summary>
public sealed class Qcow2Format : BlockFormat
{
    public override BlockdevDriver Driver => BlockdevDriver.Qcow2;

    /// <summary>QEMU's score for a qcow2 magic with a version it knows (2 or 3), which beats raw.</summary>
    public override int Probe(ReadOnlySpan<byte> head, string fileName) =>
        head.Length >= 8 && BinaryPrimitives.ReadUInt32BigEndian(head) == Qcow2Layout.Magic
            && BinaryPrimitives.ReadUInt32BigEndian(head[4..]) >= 2 ? 100 : 0;

    public override ValueTask<BlockNode> OpenAsync(BlockOpenContext context, CancellationToken cancellationToken) =>
        Qcow2Driver.OpenAsync(context, cancellationToken);

    public override BlockdevOptions OptionsOver(BlockdevRef file) =>
        new() { Driver = BlockdevDriver.Qcow2, Qcow2 = new BlockdevOptionsQcow2 { File = file } };

    public override bool HasBackingFiles => true;

    public override async ValueTask CreateAsync(string path, long size, string? backingFile, string? backingFormat, CancellationToken cancellationToken) =>
        await Qcow2Creator.CreateAsync(path, new Qcow2CreateOptions
        {
            Size = size,
            BackingFile = backingFile,
            BackingFormat = backingFile != null ? backingFormat : null,
        }, cancellationToken).ConfigureAwait(false);
}
