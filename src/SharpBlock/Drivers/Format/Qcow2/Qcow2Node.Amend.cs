using SharpBlock.Errors;

namespace SharpBlock.Drivers.Format.Qcow2;

public sealed partial class Qcow2Node
{
    /// <summary>
    /// `img amend`: changes the compatibility level (either way), lazy refcounts and the refcount width in
    /// place, in QEMU's order: upgrade, then the new width, then a downgrade to 0.10 (which rewrites every
    /// zero cluster first, see <see cref="DowngradeLockedAsync"/>).
    /// </summary>
    public async ValueTask AmendAsync(string? compat, bool? lazyRefcounts, CancellationToken cancellationToken = default) =>
        await AmendAsync(compat, lazyRefcounts, null, cancellationToken).ConfigureAwait(false);

    /// <inheritdoc cref="AmendAsync(string?, bool?, CancellationToken)"/>
    public async ValueTask AmendAsync(string? compat, bool? lazyRefcounts, int? refcountBits, CancellationToken cancellationToken = default)
    {
        if (ReadOnly)
            throw new BlockException(Errno.EPERM, $"Image '{FileName}' is read-only");
        RefuseWritesIfCorrupt();
        await _meta.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var h = _header;
            bool downgrade = false;
            if (compat is "1.1" or "v3" && h.Version < 3)
            {
                // Version 2 counts in 16 bits; version 3 says so in refcount_order.
                h = h with { Version = 3, HeaderLength = Qcow2Layout.V3HeaderSize, RefcountOrder = 4 };
            }
            else if (compat is "0.10" or "v2" && h.Version >= 3)
            {
                if (lazyRefcounts == true)
                    throw new BlockException(Errno.EINVAL, "Lazy refcounts only supported with compatibility level 1.1 and above (use compat=1.1 or greater)");
                downgrade = true;
            }
            else if (compat != null && compat is not ("1.1" or "v3" or "0.10" or "v2"))
            {
                throw new BlockException(Errno.EINVAL, $"Invalid compatibility level: '{compat}'");
            }

            int? newOrder = null;
            if (refcountBits is { } bits)
            {
                if (bits < 1 || bits > 64 || (bits & (bits - 1)) != 0)
                    throw new BlockException(Errno.EINVAL, "Refcount width must be a power of two and may not exceed 64 bits");
                if (bits != 16 && (downgrade || h.Version < 3))
                    throw new BlockException(Errno.EINVAL, "Refcount widths other than 16 bits require compatibility level 1.1 or above (use compat=1.1 or greater)");
                newOrder = System.Numerics.BitOperations.Log2((uint)bits);
            }

            if (lazyRefcounts is { } lazy)
            {
                if (lazy && h.Version < 3)
                    throw new BlockException(Errno.EINVAL, "Lazy refcounts only supported with compatibility level 1.1 and above (use compat=1.1 or greater)");
                h = h with { CompatibleFeatures = lazy ? h.CompatibleFeatures | Qcow2Layout.CompatLazyRefcounts : h.CompatibleFeatures & ~Qcow2Layout.CompatLazyRefcounts };
            }

            if (!downgrade && h != _header)
            {
                // Everything cached reaches the disk before the header that describes it changes.
                await FlushMetadataLockedAsync(cancellationToken).ConfigureAwait(false);
                await RewriteHeaderLockedAsync(h, _backingName, _backingFormat, cancellationToken).ConfigureAwait(false);
            }

            if (newOrder is { } order && order != _refOrder)
                await ChangeRefcountOrderLockedAsync(order, cancellationToken).ConfigureAwait(false);

            if (downgrade)
            {
                h = await DowngradeLockedAsync(_header, cancellationToken).ConfigureAwait(false);
                await RewriteHeaderLockedAsync(h, _backingName, _backingFormat, cancellationToken).ConfigureAwait(false);
                _featureNames.Clear();
            }
        }
        finally
        {
            _meta.Release();
        }
    }

    /// <summary>
    /// Rewrites the refcount structures with a new entry width: every reference is recounted, new blocks and
    /// table are written past the end of the file, and one header write switches width and table together,
    /// so a crash leaves either the old structures or the new ones, never a mix. The old ones become free.
    /// </summary>
    private async ValueTask ChangeRefcountOrderLockedAsync(int order, CancellationToken ct)
    {
        await FlushMetadataLockedAsync(ct).ConfigureAwait(false);
        await _file.FlushAsync(ct).ConfigureAwait(false);
        var (result, counter) = await ScanLockedAsync(null, ct).ConfigureAwait(false);
        if (result.Corruptions > 0)
            throw new BlockException(Errno.EIO, "Cannot change the refcount width of an image with corruptions; repair it first (check -r all)");
        ulong max = Qcow2Refcount.MaxValue(order);
        for (long c = 0; c < counter.Refs.Length; c++)
        {
            ulong refs = counter.Refs[c] - counter.RefcountStructures[c];
            if (refs > max)
                throw new BlockException(Errno.EINVAL, $"Cannot decrease refcount entry width to {1 << order} bits: Cluster at offset 0x{c << _clusterBits:x} has a refcount of {refs}");
        }

        await RebuildRefcountsLockedAsync(counter, ct, order).ConfigureAwait(false);
    }
}
