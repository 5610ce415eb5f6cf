using SharpBlock.Errors;

namespace SharpBlock.Drivers.Format.Qcow2;

public sealed partial class Qcow2Node
{
    /// <summary>
    /// `img amend`: changes the compatibility level (either way) and lazy refcounts in place. Going back to
    /// 0.10 rewrites every zero cluster first (see <see cref="DowngradeLockedAsync"/>).
    /// </summary>
    public async ValueTask AmendAsync(string? compat, bool? lazyRefcounts, CancellationToken cancellationToken = default)
    {
        if (ReadOnly)
            throw new BlockException(Errno.EPERM, $"Image '{FileName}' is read-only");
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

            if (lazyRefcounts is { } lazy)
            {
                if (lazy && h.Version < 3)
                    throw new BlockException(Errno.EINVAL, "Lazy refcounts only supported with compatibility level 1.1 and above (use compat=1.1 or greater)");
                h = h with { CompatibleFeatures = lazy ? h.CompatibleFeatures | Qcow2Layout.CompatLazyRefcounts : h.CompatibleFeatures & ~Qcow2Layout.CompatLazyRefcounts };
            }

            if (downgrade)
            {
                h = await DowngradeLockedAsync(h, cancellationToken).ConfigureAwait(false);
                await RewriteHeaderLockedAsync(h, _backingName, _backingFormat, cancellationToken).ConfigureAwait(false);
                _featureNames.Clear();
            }
            else if (h != _header)
            {
                // Everything cached reaches the disk before the header that describes it changes.
                await FlushMetadataLockedAsync(cancellationToken).ConfigureAwait(false);
                await RewriteHeaderLockedAsync(h, _backingName, _backingFormat, cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            _meta.Release();
        }
    }
}
