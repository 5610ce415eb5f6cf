namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>
/// Lazy refcounts: once the dirty bit is on disk, refcount blocks no longer have to reach the disk before
/// the L2 tables that use their clusters; they go out at the next flush, in any order. Write-back of L2
/// tables (cache evictions, allocating writes) then costs no extra write and no extra flush.
/// </summary>
/// <remarks>
/// A crash can now leave a cluster referenced with a refcount of zero. That is safe only because the dirty
/// bit was made durable before the first deferred update: every read-write open of a dirty image rebuilds
/// the refcounts from the tables (see OpenAsync), as QEMU does, before anything allocates. Closing clears
/// the bit only after a flush that left nothing dirty behind.
/// </remarks>
public sealed partial class Qcow2Node
{
    /// <summary>Set when a flush failed: what it wrote may not be on disk, so the dirty bit must stay.</summary>
    private bool _flushFailed;

    /// <summary>Whether refcount block writes may lag behind the tables right now.</summary>
    private bool DeferRefcountWrites => UseLazyRefcounts && _headerDirtyBitSet;

    /// <summary>True when every cached table and queued free has reached the file.</summary>
    private bool MetadataClean =>
        _pendingFrees.Count == 0 && !_l1Dirty && _l2Cache.DirtyEntries().Count == 0 && _refCache.DirtyEntries().Count == 0;

    /// <summary>
    /// Read-only to read-write (commit does this to its base): the read-only open could not write, so a dirty
    /// image was never repaired (its refcounts may lag its tables) and autoclear features we do not maintain
    /// are still set; both are dealt with before anything allocates or writes. Read-write to read-only: the flush before this left nothing dirty, so the bit
    /// goes, as a close would clear it.
    /// </summary>
    protected override async ValueTask ReopenCoreAsync(bool readOnly, CancellationToken cancellationToken)
    {
        await _meta.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (readOnly)
            {
                if (_headerDirtyBitSet && MetadataClean && !_flushFailed)
                    await SetDirtyBitAsync(false, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await PrepareForWritingAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            _meta.Release();
        }
    }
}
