namespace SharpBlock.Graph;

/// <summary>A format that records the name of its backing file in its own metadata (qcow2, later qed, vmdk...).</summary>
public interface IBackingFileFormat
{
    /// <summary>Rewrites the recorded backing file name and format; null removes the backing file.</summary>
    ValueTask ChangeBackingFileAsync(string? backingFile, string? backingFormat, CancellationToken cancellationToken = default);
}
