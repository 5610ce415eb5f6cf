using System.Collections.Immutable;
using SharpBlock.Bitmaps;
using SharpBlock.Drivers;
using SharpBlock.Errors;

namespace SharpBlock.Graph;

/// <summary>What a command is about to do with a bitmap; each use forbids a different set of states.</summary>
[Flags]
public enum BitmapUse
{
    /// <summary>Only read it (a merge source): an inconsistent bitmap may not be read.</summary>
    Read = 0,

    /// <summary>Toggle recording: allowed on a read-only bitmap, not on a busy or inconsistent one.</summary>
    Toggle = 1,

    /// <summary>Change its bits (clear, merge target).</summary>
    Modify = 2,

    /// <summary>Remove it: allowed when inconsistent (that is the way out), not when busy or read-only.</summary>
    Remove = 4,
}

public abstract partial class BlockNode
{
    /// <summary>The smallest and largest granularity of a named bitmap, as QEMU allows them.</summary>
    public const long MinBitmapGranularity = 512, MaxBitmapGranularity = 1L << 31;

    // In the order they were added; copied on change so the write path reads it without a lock.
    private ImmutableArray<NamedDirtyBitmap> _bitmaps = [];
    private readonly object _bitmapLock = new();

    /// <summary>The node's named bitmaps, oldest first.</summary>
    public ImmutableArray<NamedDirtyBitmap> Bitmaps => _bitmaps;

    public NamedDirtyBitmap? FindBitmap(string name)
    {
        foreach (var b in _bitmaps)
        {
            if (b.Name == name)
                return b;
        }

        return null;
    }

    /// <summary>
    /// QEMU's default granularity: the cluster size of a clustered format, kept between 4 KiB and 64 KiB, else
    /// 64 KiB (a raw or protocol node has no clusters to follow).
    /// </summary>
    public long DefaultBitmapGranularity =>
        this is IClusteredImage c && c.ClusterSize > 0 ? Math.Clamp(c.ClusterSize, 4096, 65536) : 65536;

    /// <summary>
    /// Adds a named bitmap after QEMU's checks, in QEMU's order and words. whereName is how messages name the
    /// node (its device's name when it is a device's root, else its node name).
    /// </summary>
    public NamedDirtyBitmap AddBitmap(string name, long? granularity, bool persistent, bool disabled, string whereName)
    {
        if (name.Length == 0)
            throw new BlockException(Errno.EINVAL, "Bitmap name cannot be empty");
        long g = granularity ?? DefaultBitmapGranularity;
        if (g < MinBitmapGranularity || g > MaxBitmapGranularity || (g & (g - 1)) != 0)
            throw new BlockException(Errno.EINVAL, "Granularity must be power of 2 and at least 512");
        if (persistent)
        {
            if (this is not IPersistentBitmaps store)
                throw new BlockException(Errno.EOPNOTSUPP, $"Can't store persistent bitmaps to {whereName}: {BlockException.Describe(Errno.EOPNOTSUPP)}");
            if (store.WhyCannotStore(name, g) is { } why)
                throw new BlockException(Errno.EINVAL, $"Can't make bitmap '{name}' persistent in '{whereName}': {why}");
        }

        var bitmap = new NamedDirtyBitmap(name, Length, g, persistent, !disabled);
        lock (_bitmapLock)
        {
            if (FindBitmap(name) != null)
                throw new BlockException(Errno.EEXIST, $"Bitmap already exists: {name}");
            _bitmaps = _bitmaps.Add(bitmap);
        }

        return bitmap;
    }

    /// <summary>Puts a bitmap that a format loaded from its image on the node (at open, before any write).</summary>
    protected NamedDirtyBitmap AttachLoadedBitmap(string name, long granularity, bool recording, bool inconsistent, bool readOnly)
    {
        var bitmap = new NamedDirtyBitmap(name, Length, granularity, persistent: true, recording && !inconsistent)
        {
            Inconsistent = inconsistent,
            ReadOnly = readOnly,
        };
        lock (_bitmapLock)
            _bitmaps = _bitmaps.Add(bitmap);
        return bitmap;
    }

    /// <summary>Removes a named bitmap; a persistent one leaves the image too.</summary>
    public async ValueTask RemoveBitmapAsync(NamedDirtyBitmap bitmap, CancellationToken cancellationToken = default)
    {
        CheckBitmap(bitmap, BitmapUse.Remove);
        if (bitmap.Persistent && this is IPersistentBitmaps store)
            await store.RemoveStoredBitmapAsync(bitmap.Name, cancellationToken).ConfigureAwait(false);
        DetachBitmap(bitmap);
    }

    /// <summary>Takes a bitmap off the node without touching the image (the undo of an add).</summary>
    public void DetachBitmap(NamedDirtyBitmap bitmap)
    {
        lock (_bitmapLock)
            _bitmaps = _bitmaps.Remove(bitmap);
    }

    /// <summary>Refuses the use when the bitmap's state forbids it, with QEMU's words (busy, then read-only, then inconsistent).</summary>
    public static void CheckBitmap(NamedDirtyBitmap bitmap, BitmapUse use)
    {
        if (bitmap.Busy && use != BitmapUse.Read)
            throw new BlockException(Errno.EBUSY, $"Bitmap '{bitmap.Name}' is currently in use by another operation and cannot be used");
        if (bitmap.ReadOnly && (use & (BitmapUse.Modify | BitmapUse.Remove)) != 0)
            throw new BlockException(Errno.EPERM, $"Bitmap '{bitmap.Name}' is readonly and cannot be modified");
        if (bitmap.Inconsistent && use != BitmapUse.Remove)
            throw new BlockException(Errno.EINVAL, $"Bitmap '{bitmap.Name}' is inconsistent and cannot be used");
    }

    public static void SetBitmapRecording(NamedDirtyBitmap bitmap, bool recording)
    {
        CheckBitmap(bitmap, BitmapUse.Toggle);
        bitmap.Recording = recording;
    }

    /// <summary>
    /// Refuses a merge source that cannot go into target: an inconsistent one, or one covering another number
    /// of bytes (granularities may differ).
    /// </summary>
    public static void CheckMergeSource(NamedDirtyBitmap target, NamedDirtyBitmap source)
    {
        CheckBitmap(source, BitmapUse.Read);
        if (source.Bits.Length != target.Bits.Length)
            throw new BlockException(Errno.EINVAL, $"Bitmaps are of different sizes (destination size is {target.Bits.Length}, source size is {source.Bits.Length}) and can't be merged");
    }

    /// <summary>Clears every bit of a bitmap the caller may modify.</summary>
    public static void ClearBitmap(NamedDirtyBitmap bitmap)
    {
        CheckBitmap(bitmap, BitmapUse.Modify);
        bitmap.Bits.ClearAll();
    }

    /// <summary>Marks a bitmap busy (an operation uses it) or frees it again.</summary>
    public static void SetBitmapBusy(NamedDirtyBitmap bitmap, bool busy) => bitmap.Busy = busy;

    /// <summary>Marks the range in every recording bitmap: the one place writes, write-zeroes and discards feed them.</summary>
    private void MarkBitmaps(long offset, long length)
    {
        foreach (var b in _bitmaps)
        {
            if (b.Recording)
                b.Bits.Set(offset, length);
        }
    }

    /// <summary>Follows a change of the node's length: new space starts clean, bits past a new end go.</summary>
    protected void ResizeBitmaps(long length)
    {
        foreach (var b in _bitmaps)
            b.Bits.Resize(length);
    }
}
