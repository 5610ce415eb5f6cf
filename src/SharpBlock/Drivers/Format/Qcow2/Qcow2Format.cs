using System.Buffers.Binary;
using SharpBlock.Copy;
using SharpBlock.Drivers.Creation;
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

    public override bool SetBacking(BlockdevOptions options, BlockdevRef backing)
    {
        if (options.Qcow2 is not { } q)
            return false;
        q.Backing = BlockdevRefOrNull.From(backing);
        return true;
    }

    public override bool CompressedWrites => true;

    public override async ValueTask CreateAsync(string path, long size, string? backingFile, string? backingFormat, CancellationToken cancellationToken) =>
        await Qcow2Creator.CreateAsync(path, new Qcow2CreateOptions
        {
            Size = size,
            BackingFile = backingFile,
            BackingFormat = backingFile != null ? backingFormat : null,
        }, cancellationToken).ConfigureAwait(false);

    public override IReadOnlyList<ImageOption> CreateOptions => ImageCreateQcow2.Options;

    public override ImageCreation PlanCreate(ImageOptionValues options) => Qcow2Creation.Plan(options);

    public override IReadOnlyList<ImageOption>? AmendOptions => ImageAmendQcow2.Options;

    public override async ValueTask<ImageMeasurement> MeasureAsync(ImageOptionValues options, long virtualSize, BlockNode? source, CancellationToken cancellationToken)
    {
        var o = ImageCreateQcow2.Read(options);
        long clusterSize = (long)(o.ClusterSize ?? (1u << Qcow2Layout.DefaultClusterBits));
        int refcountBits = (int)Math.Clamp(o.RefcountBits ?? 16, 0, 1024);
        // The same limits as creation, so a measure never divides by a cluster or width qcow2 cannot have.
        Qcow2Creator.Validate(new Qcow2CreateOptions
        {
            Size = virtualSize,
            ClusterSize = (int)Math.Min(clusterSize, int.MaxValue),
            RefcountBits = refcountBits,
            Compat = o.Compat ?? "1.1",
        });
        long full = Qcow2Measure.FullyAllocated(virtualSize, clusterSize, refcountBits);
        // falloc and full preallocation write every data cluster, whatever the source holds.
        bool allData = o.Preallocation is PreallocMode.Falloc or PreallocMode.Full;
        long data = allData || source == null ? 0 : await BlockStatusAbove.AllocatedClusterBytesAsync(source, clusterSize, cancellationToken).ConfigureAwait(false);
        // qemu-img counts bitmaps only when the source can hold them too; a new image has none yet.
        return new ImageMeasurement(
            allData ? full : Qcow2Measure.Required(virtualSize, clusterSize, refcountBits, data),
            full,
            source is Qcow2Node ? 0 : null);
    }
}
