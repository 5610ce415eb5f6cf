using System.Globalization;

namespace SharpBlock.Drivers.Format.Parallels;

/// <summary>
/// qemu-img check for Parallels as QEMU 7.2 does it: the inuse mark is a corruption, a cluster past the end of
/// the file is a corruption (repaired by dropping its entry), and file space past the last cluster is a leak
/// (repaired by truncating). QEMU measures the end as the highest cluster plus one, or one cluster with none.
/// </summary>
public sealed partial class ParallelsNode : ICheckableImage
{
    /// <summary>
    /// As qemu-img: after a pass that repaired something, the image is checked again without repairing, and
    /// that second pass (its messages too) is what is reported, with the first pass's repair counts.
    /// </summary>
    public async ValueTask<ImageCheckResult> CheckAsync(ImageCheckMode mode, Action<string>? report, CancellationToken cancellationToken = default)
    {
        var first = await CheckOnceAsync(mode, report, cancellationToken).ConfigureAwait(false);
        if (first.LeaksFixed == 0 && first.CorruptionsFixed == 0)
            return first;
        var second = await CheckOnceAsync(ImageCheckMode.None, report, cancellationToken).ConfigureAwait(false);
        second.LeaksFixed = first.LeaksFixed;
        second.CorruptionsFixed = first.CorruptionsFixed;
        return second;
    }

    private async ValueTask<ImageCheckResult> CheckOnceAsync(ImageCheckMode mode, Action<string>? report, CancellationToken cancellationToken)
    {
        bool fixErrors = mode == ImageCheckMode.All;
        bool fixLeaks = mode != ImageCheckMode.None;
        var result = new ImageCheckResult();
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // QEMU measures the file in whole sectors, so a leak in a partial sector is counted to its end.
            long size = (_file.Length + ParallelsLayout.SectorSize - 1) / ParallelsLayout.SectorSize * ParallelsLayout.SectorSize;
            if (_unclean)
            {
                report?.Invoke((fixErrors ? "Repairing" : "ERROR") + " image was not closed correctly");
                result.Corruptions++;
                if (fixErrors)
                {
                    // The clean close clears the mark.
                    result.CorruptionsFixed++;
                    _unclean = false;
                }
            }

            result.TotalClusters = _bat.Length;
            long high = 0, prev = 0;
            for (long i = 0; i < _bat.Length; i++)
            {
                long off = _bat[i] == 0 ? 0 : HostOffset(_bat[i]);
                if (off == 0)
                {
                    prev = 0;
                    continue;
                }

                if (off > size)
                {
                    report?.Invoke(string.Create(CultureInfo.InvariantCulture, $"{(fixErrors ? "Repairing" : "ERROR")} cluster {i} is outside image"));
                    result.Corruptions++;
                    if (fixErrors)
                    {
                        prev = 0;
                        _bat[i] = 0;
                        _dirtyFirst = Math.Min(_dirtyFirst, i);
                        _dirtyEnd = Math.Max(_dirtyEnd, i + 1);
                        result.CorruptionsFixed++;
                        continue;
                    }
                }

                result.AllocatedClusters++;
                high = Math.Max(high, off);
                if (prev != 0 && prev + _clusterSize != off)
                    result.FragmentedClusters++;
                prev = off;
            }

            if (_dirtyEnd > 0)
            {
                await WriteBatAsync(_dirtyFirst, _dirtyEnd, cancellationToken).ConfigureAwait(false);
                await _file.FlushAsync(cancellationToken).ConfigureAwait(false);
                _dirtyFirst = long.MaxValue;
                _dirtyEnd = 0;
            }

            result.ImageEndOffset = high + _clusterSize;
            if (size > result.ImageEndOffset)
            {
                long count = (size - result.ImageEndOffset + _clusterSize - 1) / _clusterSize;
                report?.Invoke(string.Create(CultureInfo.InvariantCulture, $"{(fixLeaks ? "Repairing" : "ERROR")} space leaked at the end of the image {size - result.ImageEndOffset}"));
                result.Leaks += count;
                if (fixLeaks)
                {
                    await _file.TruncateAsync(result.ImageEndOffset, cancellationToken).ConfigureAwait(false);
                    result.LeaksFixed += count;
                }
            }
        }
        finally
        {
            _lock.Release();
        }

        return result;
    }
}
