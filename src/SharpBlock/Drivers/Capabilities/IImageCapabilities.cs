using System.Text;

namespace SharpBlock.Drivers;

/// <summary>A format that allocates in clusters: copies and measures work in its unit.</summary>
public interface IClusteredImage
{
    int ClusterSize { get; }
}

/// <summary>A format that stores clusters compressed (convert -c).</summary>
public interface ICompressedWrites : IClusteredImage
{
    /// <summary>
    /// Compresses one guest cluster into output (at least ClusterSize bytes); -1 when it would not shrink.
    /// Touches no image state, so callers compress in parallel and write in order.
    /// </summary>
    int CompressCluster(ReadOnlySpan<byte> cluster, Span<byte> output);

    /// <summary>Stores one whole, unallocated guest cluster; an empty compressed buffer stores it plainly.</summary>
    ValueTask WriteCompressedAsync(long offset, ReadOnlyMemory<byte> cluster, ReadOnlyMemory<byte> compressed, CancellationToken cancellationToken = default);

    /// <summary>
    /// Whether the image takes only compressed writes of whole clusters (a VMDK streamOptimized image, QEMU's
    /// needs_compressed_writes): convert then writes through <see cref="WriteCompressedAsync"/> even without -c.
    /// </summary>
    bool CompressedOnly => false;
}

/// <summary>A COW format that can drop every mapping, so the image reads from its backing file again (img commit).</summary>
public interface IMakeEmpty
{
    ValueTask MakeEmptyAsync(CancellationToken cancellationToken = default);
}

/// <summary>What a format adds to img info's human output under "Format specific information".</summary>
public interface IFormatSpecificInfo
{
    /// <summary>Appends the indented lines qemu-img prints for this format (none when it prints none).</summary>
    void AppendFormatSpecific(StringBuilder text);
}

/// <summary>Rules a format puts on resizing, which the image tool checks before it asks.</summary>
public interface IResizeRules
{
    /// <summary>The new size must be a multiple of this.</summary>
    int SizeGranularity { get; }

    /// <summary>Whether preallocation=metadata can be given for the grown part.</summary>
    bool PreallocatesMetadata { get; }
}
