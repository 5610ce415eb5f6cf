using System.Buffers.Binary;
using System.Numerics;
using System.Text;
using SharpBlock.Drivers.Creation;
using SharpBlock.Drivers.Protocol.File;
using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Drivers.Format.Vhdx;

/// <summary>
/// Creates vhdx images laid out as qemu-img lays them: the header section, the log at 1 MiB, the BAT, the
/// metadata region, 5 MiB of slack, then the payload blocks (all of them for a fixed image).
/// </summary>
public static class VhdxCreator
{
    /// <summary>What the file identifier names as the writer (diagnostic only, UTF-16).</summary>
    private const string Creator = "SharpBlock";

    /// <summary>Refuses what qemu-img refuses, in its words.</summary>
    public static void Validate(VhdxCreateOptions o)
    {
        if (o.Size < 0)
            throw new BlockException(Errno.EINVAL, "Image size must be non-negative");
        if (o.Size > VhdxLayout.MaxVirtualSize)
            throw new BlockException(Errno.EINVAL, "Image size too large; max of 64TB");
        if (o.LogSize > uint.MaxValue)
            throw new BlockException(Errno.EINVAL, "Log size must be smaller than 4 GB");
        if (o.LogSize < (ulong)VhdxLayout.MiB || o.LogSize % (ulong)VhdxLayout.MiB != 0)
            throw new BlockException(Errno.EINVAL, "Log size must be a multiple of 1 MB");
        if (o.BlockSize < (ulong)VhdxLayout.MiB || o.BlockSize % (ulong)VhdxLayout.MiB != 0)
            throw new BlockException(Errno.EINVAL, "Block size must be a multiple of 1 MB");
        if (!BitOperations.IsPow2(o.BlockSize))
            throw new BlockException(Errno.EINVAL, "Block size must be a power of two");
        if (o.BlockSize > (ulong)VhdxLayout.MaxBlockSize)
            throw new BlockException(Errno.EINVAL, $"Block size must not exceed {VhdxLayout.MaxBlockSize}");
    }

    public static async ValueTask CreateAsync(string path, VhdxCreateOptions o, CancellationToken cancellationToken = default)
    {
        Validate(o);
        ImageFiles.Create(path).Dispose();
        var file = FileNode.Open(path, NodeSettings.Default, HostFileProbe.DriverFor(path));
        await using (file.ConfigureAwait(false))
            await WriteAsync(file, o, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The file offsets of a new image's regions, as qemu-img places them.</summary>
    internal readonly record struct Plan(long LogOffset, long BatOffset, long BatLength, long MetadataOffset, long DataOffset, long ChunkRatio, long Entries);

    internal static Plan PlanLayout(VhdxCreateOptions o)
    {
        long block = (long)o.BlockSize;
        long chunkRatio = VhdxLayout.SectorsPerBitmapBlock * 512 / block;
        long entries = VhdxNode.BatEntries(o.Size, block, chunkRatio);
        // QEMU sizes an empty disk's BAT with its unsigned arithmetic wrapped ((0 - 1) >> log2(chunk ratio)
        // entries) and refuses to open one whose BAT region is smaller, so an empty image gets that BAT too.
        long batEntriesRoom = o.Size == 0 ? uint.MaxValue >> BitOperations.Log2((ulong)chunkRatio) : entries;
        long batOffset = VhdxLayout.RoundUp(VhdxLayout.HeaderSectionEnd + (long)o.LogSize, VhdxLayout.MiB);
        long batLength = VhdxLayout.RoundUp(batEntriesRoom * VhdxBatEntry.Size, VhdxLayout.MiB);
        long metadataOffset = VhdxLayout.RoundUp(batOffset + batLength, VhdxLayout.MiB);
        return new Plan(VhdxLayout.HeaderSectionEnd, batOffset, batLength, metadataOffset, batOffset + batLength + (5 * VhdxLayout.MiB), chunkRatio, entries);
    }

    /// <summary>Writes a new, empty image into an empty file node (which may be a memory node in tests).</summary>
    public static async ValueTask WriteAsync(BlockNode file, VhdxCreateOptions o, CancellationToken cancellationToken = default)
    {
        Validate(o);
        var p = PlanLayout(o);
        long block = (long)o.BlockSize;
        await file.TruncateAsync(o.Fixed ? p.DataOffset + o.Size : p.DataOffset, cancellationToken).ConfigureAwait(false);

        byte[] id = new byte[VhdxLayout.CreatorOffset + VhdxLayout.CreatorBytes];
        VhdxLayout.FileSignature.CopyTo(id);
        Encoding.Unicode.GetBytes(Creator, id.AsSpan(VhdxLayout.CreatorOffset));
        await file.WriteAsync(VhdxLayout.FileIdentifierOffset, id, cancellationToken: cancellationToken).ConfigureAwait(false);

        // The metadata, BAT and region tables go before the headers: an image is recognisable only once complete.
        byte[] metadata = new byte[VhdxLayout.MetadataTableSize + 40];
        var items = new (Guid Id, int Length, uint Flags)[]
        {
            (VhdxLayout.FileParametersItem, 8, VhdxLayout.MetadataIsRequired),
            (VhdxLayout.VirtualDiskSizeItem, 8, VhdxLayout.MetadataIsRequired | VhdxLayout.MetadataIsVirtualDisk),
            (VhdxLayout.Page83Item, 16, VhdxLayout.MetadataIsRequired | VhdxLayout.MetadataIsVirtualDisk),
            (VhdxLayout.LogicalSectorSizeItem, 4, VhdxLayout.MetadataIsRequired | VhdxLayout.MetadataIsVirtualDisk),
            (VhdxLayout.PhysicalSectorSizeItem, 4, VhdxLayout.MetadataIsRequired | VhdxLayout.MetadataIsVirtualDisk),
        };
        var entries = new VhdxMetadataEntry[items.Length];
        uint itemOffset = VhdxLayout.MetadataTableSize;
        for (int i = 0; i < items.Length; i++)
        {
            entries[i] = new VhdxMetadataEntry { ItemId = items[i].Id, Offset = itemOffset, Length = (uint)items[i].Length, Flags = items[i].Flags };
            itemOffset += (uint)items[i].Length;
        }

        new VhdxMetadataTable { Signature = VhdxLayout.MetadataSignature, Entries = entries }.Write(metadata);
        var values = metadata.AsSpan(VhdxLayout.MetadataTableSize);
        BinaryPrimitives.WriteUInt32LittleEndian(values, (uint)block);
        BinaryPrimitives.WriteUInt32LittleEndian(values[4..], o.Fixed ? VhdxLayout.LeaveBlocksAllocated : 0);
        BinaryPrimitives.WriteUInt64LittleEndian(values[8..], (ulong)o.Size);
        Guid.NewGuid().TryWriteBytes(values.Slice(16, 16));
        BinaryPrimitives.WriteUInt32LittleEndian(values[32..], 512);
        BinaryPrimitives.WriteUInt32LittleEndian(values[36..], 512);
        await file.WriteAsync(p.MetadataOffset, metadata, cancellationToken: cancellationToken).ConfigureAwait(false);

        if (o.Fixed || o.BlockStateZero)
        {
            var state = o.BlockStateZero ? VhdxBlockState.Zero : o.Fixed ? VhdxBlockState.FullyPresent : VhdxBlockState.NotPresent;
            byte[] bat = new byte[p.Entries * VhdxBatEntry.Size];
            for (long b = 0; b * block < o.Size; b++)
            {
                long index = b + (b / p.ChunkRatio);
                long at = VhdxLayout.RoundUp(p.DataOffset + (b * block), VhdxLayout.MiB);
                BinaryPrimitives.WriteUInt64LittleEndian(bat.AsSpan((int)(index * VhdxBatEntry.Size)), VhdxBatEntry.Of(state, at).Raw);
            }

            await file.WriteAsync(p.BatOffset, bat, cancellationToken: cancellationToken).ConfigureAwait(false);
        }

        byte[] regions = new byte[VhdxRegionTable.Size];
        new VhdxRegionTable
        {
            Signature = VhdxLayout.RegionSignature,
            Entries =
            [
                new VhdxRegionEntry { Guid = VhdxLayout.BatRegion, FileOffset = (ulong)p.BatOffset, Length = (uint)p.BatLength },
                new VhdxRegionEntry { Guid = VhdxLayout.MetadataRegion, FileOffset = (ulong)p.MetadataOffset, Length = (uint)VhdxLayout.MiB },
            ],
        }.Write(regions);
        await file.WriteAsync(VhdxLayout.RegionTable1Offset, regions, cancellationToken: cancellationToken).ConfigureAwait(false);
        await file.WriteAsync(VhdxLayout.RegionTable2Offset, regions, cancellationToken: cancellationToken).ConfigureAwait(false);

        byte[] header = new byte[VhdxHeader.Size];
        var h = new VhdxHeader
        {
            Signature = VhdxLayout.HeaderSignature,
            SequenceNumber = (ulong)Random.Shared.NextInt64(uint.MaxValue),
            FileWriteGuid = Guid.NewGuid(),
            DataWriteGuid = Guid.NewGuid(),
            LogGuid = Guid.Empty,
            LogVersion = VhdxLayout.LogVersion,
            Version = VhdxLayout.Version,
            LogLength = (uint)o.LogSize,
            LogOffset = (ulong)p.LogOffset,
        };
        h.Write(header);
        await file.WriteAsync(VhdxLayout.Header1Offset, header, cancellationToken: cancellationToken).ConfigureAwait(false);
        (h with { SequenceNumber = h.SequenceNumber + 1 }).Write(header);
        await file.WriteAsync(VhdxLayout.Header2Offset, header, cancellationToken: cancellationToken).ConfigureAwait(false);
        await file.FlushAsync(cancellationToken).ConfigureAwait(false);
    }
}
