using SharpBlock.Copy;

namespace SharpBlock.Images;

/// <summary>
/// Converting one image into a new one, as `img convert` does: the parallel copy engine, holes kept as holes,
/// progress through <see cref="IProgress{T}"/>, and cancellation between pieces.
/// </summary>
public static class DiskImageConverter
{
    /// <summary>
    /// Copies what <paramref name="source"/> shows (its backing chain included) into a new image of
    /// <paramref name="targetFormat"/> at <paramref name="targetPath"/> (replaced if it exists), created with
    /// the format's -o style <paramref name="targetOptions"/>. A cancelled or failed conversion leaves a target
    /// that is a valid image but incomplete: delete it.
    /// </summary>
    public static async Task ConvertAsync(DiskImage source, string targetPath, string targetFormat,
        IReadOnlyDictionary<string, string>? targetOptions = null, IProgress<ConvertProgress>? progress = null,
        int streams = 8, bool compress = false, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentOutOfRangeException.ThrowIfLessThan(streams, 1);
        if (SourceFiles.Includes(source.Node, targetPath))
            throw new ArgumentException($"'{targetPath}' is one of the source's own files", nameof(targetPath));
        await using var target = await DiskImage.CreateAsync(targetPath, targetFormat, source.Length, targetOptions, source.Graph.Drivers, cancellationToken).ConfigureAwait(false);
        var copier = new ConvertCopier(source.Node, target.Node, new ConvertSettings
        {
            Streams = streams,
            Compress = compress,
            TargetIsZero = true,
            Progress = progress == null ? null : new Reporter(progress),
        });
        await copier.RunAsync(cancellationToken).ConfigureAwait(false);
        await target.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Workers report out of order; the largest figure so far is what the caller sees.</summary>
    private sealed class Reporter(IProgress<ConvertProgress> progress) : ICopyProgress
    {
        private long _best;
        private long _total;

        public void Report(long done, long total)
        {
            _total = total;
            long best = Interlocked.Read(ref _best);
            while (done > best)
            {
                long seen = Interlocked.CompareExchange(ref _best, done, best);
                if (seen == best)
                {
                    progress.Report(new ConvertProgress(done, total));
                    return;
                }

                best = seen;
            }
        }

        public void Done() => progress.Report(new ConvertProgress(_total, _total));
    }
}
