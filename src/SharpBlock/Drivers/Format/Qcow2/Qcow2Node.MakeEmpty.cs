namespace SharpBlock.Drivers.Format.Qcow2;

public sealed partial class Qcow2Node
{
    /// <summary>
    /// Drops every cluster mapping so the image reads entirely from its backing file again (what
    /// `img commit` does to the top image once its data is in the base). Unlike a discard, which leaves
    /// zero clusters where a backing file would otherwise show through, this unallocates on purpose.
    /// </summary>
    public async ValueTask MakeEmptyAsync(CancellationToken cancellationToken = default)
    {
        RefuseWritesIfCorrupt();
        long end = (_size + _clusterSize - 1) & ~((long)_clusterSize - 1);
        if (end == 0)
            return;
        using (await LockClustersAsync(0, end).ConfigureAwait(false))
        {
            await _meta.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                long count = end >> _clusterBits;
                for (long i = 0; i < count;)
                {
                    var m = await LookupLockedAsync(i << _clusterBits, (count - i) << _clusterBits).ConfigureAwait(false);
                    long run = Math.Min(m.Clusters, count - i);
                    if (m.Kind != Qcow2ClusterKind.Unallocated)
                        await SetMappingLockedAsync(i, run, static _ => 0, FreeReason.Other).ConfigureAwait(false);
                    i += run;
                }
            }
            finally
            {
                _meta.Release();
            }
        }

        await FlushAsync(cancellationToken).ConfigureAwait(false);
    }
}
