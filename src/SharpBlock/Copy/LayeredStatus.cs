using SharpBlock.Io;

namespace SharpBlock.Copy;

/// <summary>
/// What a backing chain reads at one range, and which layer decides it (see <see cref="BlockStatusAbove"/>).
/// </summary>
/// <param name="Status">The deciding layer's answer; its length is the length of this answer.</param>
/// <param name="Depth">0 for the top image, 1 for its backing file, and so on.</param>
/// <param name="PastEnd">
/// The range lies past the end of a backing image shorter than the layer above it: it reads as zeros, and that
/// layer (at <see cref="Depth"/>) decides so, as QEMU counts it.
/// </param>
public readonly record struct LayeredStatus(BlockStatus Status, int Depth, bool PastEnd)
{
    public long Length => Status.Length;

    public bool IsZero => Status.IsZero;

    public bool IsData => Status.IsData;

    /// <summary>Whether some layer above the walk's stop decides these bytes (zeros past a short layer's end included).</summary>
    public bool IsAllocated => PastEnd || Status.IsAllocated;
}
