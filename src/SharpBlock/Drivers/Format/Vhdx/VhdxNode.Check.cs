using SharpBlock.Errors;

namespace SharpBlock.Drivers.Format.Vhdx;

public sealed partial class VhdxNode : ICheckableImage
{
    /// <summary>
    /// qemu-img check for vhdx: a log replayed by this (read-write) open counts as one repaired corruption, and
    /// every present payload block must lie inside the file and clear of the log, BAT and metadata regions.
    /// There is nothing else to repair: -r all opens the image read-write, which is what replays the log.
    /// </summary>
    public async ValueTask<ImageCheckResult> CheckAsync(ImageCheckMode mode, Action<string>? report, CancellationToken cancellationToken = default)
    {
        var r = new ImageCheckResult();
        if (LogReplayedOnOpen)
            r.CorruptionsFixed++;
        await _meta.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            long fileLength = _file.Length;
            for (int i = 0; i < _bat.Length; i++)
            {
                if (CheckBatEntry(i, fileLength) is { } problem)
                {
                    report?.Invoke($"VHDX BAT entry {i} {problem}");
                    r.Corruptions++;
                }
            }
        }
        finally
        {
            _meta.Release();
        }

        return r;
    }

    /// <summary>QEMU's vhdx driver cannot resize; qemu-img words the refusal so.</summary>
    protected override ValueTask TruncateCoreAsync(long size, CancellationToken cancellationToken) =>
        throw new BlockException(Errno.EOPNOTSUPP, "Image format driver does not support resize");
}
