using System.Buffers;

namespace SharpBlock.Drivers.Format.Qed;

/// <summary>
/// qemu-img check for QED, counted as QEMU counts: every L1 and L2 entry must name a cluster-aligned place
/// inside the file used once; clusters nothing names are leaks. A repair clears bad entries (their data is
/// lost either way) and, on an image then free of corruption, clears the need-check bit. Leaks are only
/// counted, never reclaimed (QED has no free-space tracking to give them back to).
/// </summary>
public sealed partial class QedNode : ICheckableImage
{
    public async ValueTask<ImageCheckResult> CheckAsync(ImageCheckMode mode, Action<string>? report, CancellationToken cancellationToken = default)
    {
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await FlushTablesLockedAsync(cancellationToken).ConfigureAwait(false);
            return await CheckLockedAsync(mode != ImageCheckMode.None && !ReadOnly, report, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>The check proper; the caller holds the lock (or is opening the node, before anyone else has it).</summary>
    private async ValueTask<ImageCheckResult> CheckLockedAsync(bool fix, Action<string>? report, CancellationToken ct)
    {
        var result = new ImageCheckResult
        {
            TotalClusters = (long)((_header.ImageSize + (ulong)_clusterSize - 1) / (ulong)_clusterSize),
        };
        // QEMU counts whole clusters of the file only; a partial tail cluster is neither used nor leaked.
        long nclusters = _file.Length / _clusterSize;
        var used = new System.Collections.BitArray((int)Math.Min(nclusters, int.MaxValue));
        bool Mark(ulong offset, long count)
        {
            bool clean = true;
            for (long c = (long)(offset / (ulong)_clusterSize), end = c + count; c < end; c++)
            {
                if (c >= used.Length)
                    continue;
                if (used[(int)c])
                {
                    result.Corruptions++;
                    clean = false;
                }

                used[(int)c] = true;
            }

            return clean;
        }

        Mark(_header.L1TableOffset, _header.TableSize);
        bool l1Changed = false;
        byte[] raw = ArrayPool<byte>.Shared.Rent(_tableBytes);
        try
        {
            for (int i = 0; i < _entries; i++)
            {
                ulong l2Offset = _l1[i];
                if (l2Offset == 0)
                    continue;
                if (!TableOffsetValid(l2Offset))
                {
                    report?.Invoke($"ERROR: L1 entry {i} points at invalid L2 table offset 0x{l2Offset:x}");
                    if (fix)
                    {
                        _l1[i] = 0;
                        l1Changed = true;
                        result.CorruptionsFixed++;
                    }
                    else
                    {
                        result.Corruptions++;
                    }

                    continue;
                }

                if (!Mark(l2Offset, _header.TableSize))
                    continue;
                var table = await LoadL2LockedAsync(i, l2Offset, ct).ConfigureAwait(false);
                bool l2Changed = false;
                ulong last = 0;
                for (int j = 0; j < table.Length; j++)
                {
                    ulong e = table[j];
                    if (e is 0 or QedLayout.ZeroCluster)
                        continue;
                    result.AllocatedClusters++;
                    if (last != 0 && last + (ulong)_clusterSize != e)
                        result.FragmentedClusters++;
                    last = e;
                    if (!ClusterOffsetValid(e))
                    {
                        report?.Invoke($"ERROR: L2 entry {j} of table 0x{l2Offset:x} points at invalid cluster offset 0x{e:x}");
                        if (fix)
                        {
                            table[j] = 0;
                            l2Changed = true;
                            result.CorruptionsFixed++;
                        }
                        else
                        {
                            result.Corruptions++;
                        }

                        continue;
                    }

                    Mark(e, 1);
                }

                if (l2Changed)
                {
                    Encode(table, raw);
                    await _file.WriteAsync((long)l2Offset, raw.AsMemory(0, _tableBytes), Io.RequestFlags.None, ct).ConfigureAwait(false);
                }
            }

            if (l1Changed)
            {
                await _file.FlushAsync(ct).ConfigureAwait(false);
                Encode(_l1, raw);
                await _file.WriteAsync((long)_header.L1TableOffset, raw.AsMemory(0, _tableBytes), Io.RequestFlags.None, ct).ConfigureAwait(false);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(raw);
        }

        for (long c = _header.HeaderSize; c < used.Length; c++)
        {
            if (!used[(int)c])
                result.Leaks++;
        }

        if (fix && result.Corruptions == 0 && result.CheckErrors == 0 && _header.NeedCheck)
        {
            await _file.FlushAsync(ct).ConfigureAwait(false);
            _header = _header with { Features = _header.Features & ~QedLayout.FeatureNeedCheck };
            await WriteHeaderLockedAsync(ct).ConfigureAwait(false);
        }

        return result;
    }
}
