namespace SharpBlock.Drivers;

/// <summary>
/// A format that stores named dirty bitmaps in the image (qcow2): block-dirty-bitmap-add with persistent asks
/// it first, and removing a persistent bitmap removes it from the image too.
/// </summary>
public interface IPersistentBitmaps
{
    /// <summary>
    /// Why a new persistent bitmap of that name and granularity could not be stored (QEMU's reason, e.g. a
    /// version 2 image), or null when it can.
    /// </summary>
    string? WhyCannotStore(string name, long granularity);

    /// <summary>Drops the bitmap from the image at once (its directory entry and clusters), if it is stored there.</summary>
    ValueTask RemoveStoredBitmapAsync(string name, CancellationToken cancellationToken = default);
}
