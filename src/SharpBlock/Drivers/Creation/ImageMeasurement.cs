namespace SharpBlock.Drivers.Creation;

/// <summary>
/// How large a new image would be (img measure): <see cref="Required"/> for the data a source actually holds,
/// <see cref="FullyAllocated"/> if every cluster were written, and the bitmaps' share when both formats keep them.
/// </summary>
public sealed record ImageMeasurement(long Required, long FullyAllocated, long? Bitmaps = null);
