using SharpBlock.Graph;

namespace SharpBlock.Drivers.Format.Vmdk;

/// <summary>What a guest offset of an extent maps to.</summary>
internal enum VmdkGrainState
{
    /// <summary>Not stored here: the backing image decides (zeros without one).</summary>
    Unallocated,

    /// <summary>A zeroed grain (grain table entry 1).</summary>
    Zeroed,

    /// <summary>Plain data at <see cref="VmdkMapping.HostOffset"/> of the extent's file.</summary>
    Data,

    /// <summary>A compressed grain whose marker (or stream) starts at <see cref="VmdkMapping.HostOffset"/>.</summary>
    Compressed,
}

/// <summary>One run of an extent: its state, where it sits, and how many bytes from the asked offset share it.</summary>
internal readonly record struct VmdkMapping(VmdkGrainState State, long HostOffset, long Length);

/// <summary>
/// One extent of a VMDK image: a run of guest sectors stored in one file, flat (the bytes as they are, from an
/// offset) or sparse (grains found through a grain directory and grain tables).
/// </summary>
internal abstract class VmdkExtent
{
    protected VmdkExtent(BlockNode file, string type, long start, long length)
    {
        File = file;
        Debug = FormatDebugEvents.Attach(file);
        Type = type;
        Start = start;
        Length = length;
    }

    public BlockNode File { get; }

    /// <summary>blkdebug events go to the extent's own file, where QEMU's vmdk raises them.</summary>
    public FormatDebugEvents Debug { get; }

    /// <summary>The type as the descriptor names it (FLAT, SPARSE, VMFS...), or "" for the image's own sparse extent.</summary>
    public string Type { get; }

    /// <summary>First guest byte of the extent.</summary>
    public long Start { get; }

    /// <summary>Guest bytes the extent holds.</summary>
    public long Length { get; }

    public long End => Start + Length;

    /// <summary>The grain size in bytes; 0 for a flat extent.</summary>
    public virtual long GrainBytes => 0;

    public virtual bool Compressed => false;

    /// <summary>Maps an offset inside the extent. Sparse extents need the node's metadata lock held.</summary>
    public abstract ValueTask<VmdkMapping> MapAsync(long offset, CancellationToken cancellationToken);
}

/// <summary>A flat extent: guest byte N of the extent is byte Offset + N of its file.</summary>
internal sealed class VmdkFlatExtent : VmdkExtent
{
    public VmdkFlatExtent(BlockNode file, string type, long start, long length, long offset)
        : base(file, type, start, length)
    {
        Offset = offset;
    }

    public long Offset { get; }

    public override ValueTask<VmdkMapping> MapAsync(long offset, CancellationToken cancellationToken) =>
        ValueTask.FromResult(new VmdkMapping(VmdkGrainState.Data, Offset + offset, Length - offset));
}
