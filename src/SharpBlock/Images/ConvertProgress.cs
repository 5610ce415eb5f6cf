namespace SharpBlock.Images;

/// <summary>How far a conversion got, reported through <see cref="IProgress{T}"/>.</summary>
/// <param name="Done">Bytes of the virtual disk handled so far (copied, or found to be zeros).</param>
/// <param name="Total">The virtual size being converted.</param>
public readonly record struct ConvertProgress(long Done, long Total)
{
    /// <summary>Done as a percentage (100 for an empty disk).</summary>
    public double Percent => Total == 0 ? 100 : Done * 100.0 / Total;
}
