using System.Globalization;
using SharpBlock.Drivers;
using SharpBlock.Copy;
using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Cli.Img;

/// <summary>
/// `img convert [-p] [-c] [-q] [-n] [-W] [-m N] [-S SIZE] [-B BACKING [-F BACKING_FMT]] [-t CACHE] [-T CACHE] [-f FMT] [-O FMT]
/// [-o OPTIONS] SRC DST`: copies the guest-visible content of SRC (its whole backing chain) into a new image.
/// Ranges that read as zeros stay holes in the target (runs shorter than -S are written, -S 0 writes all).
/// With -B the target gets that backing file and only what SRC's top image holds is copied. -m workers copy
/// in parallel; their writes land in order unless -W is given (see <see cref="ConvertCopier"/>).
/// </summary>
internal static class ImgConvert
{
    public static async Task<int> RunAsync(string[] argv)
    {
        var a = ImgArgs.Parse(argv, "fOoSBFmtTl", "pcqnhUW", ["object"], ["force-share", "image-opts", "target-image-opts", "target-is-zero"]);
        if (ImgOptionHelp.Requested(a.GetAll("-o")))
            return ImgOptionHelp.PrintCreate(ImgNewImage.Format(a.Get("-O") ?? "raw"));
        if (a.Positional.Count != 2)
            throw new ImgUsageException("Must specify image file name");
        string src = a.Positional[0];
        string dst = a.Positional[1];
        string outFmt = a.Get("-O") ?? "raw";
        string? targetKeySecret = null;
        if (a.Has("--target-image-opts"))
        {
            // The target is named by its options ("driver=qcow2,file.filename=PATH"); it must exist already.
            if (!a.Has("-n"))
                throw new ImgUsageException("--target-image-opts requires use of -n flag");
            var spec = ImgImageSpec.Parse(dst);
            dst = spec.Path;
            outFmt = spec.Format ?? outFmt;
            targetKeySecret = spec.KeySecrets.GetValueOrDefault(0);
        }

        var format = ImgNewImage.Format(outFmt);
        bool compress = a.Has("-c");
        long minSparse = a.Get("-S") is { } sparse ? ParseMinSparse(sparse) : 4096;
        int streams = 8;
        if (a.Get("-m") is { } m && (!int.TryParse(m, NumberStyles.None, CultureInfo.InvariantCulture, out streams) || streams < 1 || streams > 16))
            throw new ImgUsageException("Invalid number of coroutines. Allowed number of coroutines is between 1 and 16");
        if (a.Has("--target-is-zero") && !a.Has("-n"))
            throw new ImgUsageException("--target-is-zero requires use of -n flag");
        if (a.Get("-B") != null && a.Has("-n"))
            throw new ImgUsageException("Backing file (-B) cannot be used together with -n");
        bool progress = a.Has("-p") && !a.Has("-q");
        var values = ImgNewImage.Options(format, a.GetAll("-o"));
        // -o backing_file is -B by another name, as with qemu-img.
        ImgNewImage.SetBacking(format, values, a.Get("-B"), a.Get("-F"));
        string? backing = values.Get("backing_file");
        if (targetKeySecret != null && !values.Has(ImgEncryptOptions.KeySecret))
            values.Set(ImgEncryptOptions.KeySecret, targetKeySecret);
        // qemu-img 7.2 no longer guesses the backing file's format: probing a file the user names as backing is
        // how a raw image gets read as qcow2.
        if (backing != null && !values.Has("backing_fmt"))
            throw new ImgUsageException("Use of backing file requires explicit backing format");
        if (compress && !format.CompressedWrites)
            throw new ImgUsageException("Compression not supported for this file format");
        var secrets = ImgSecrets.Parse(a.GetAll("--object"));

        // As with qemu-img, the target defaults to cache=unsafe: a convert that dies leaves a useless target
        // anyway, so it is not flushed to disk at the end; -t writeback (or stricter) makes it durable.
        var targetCache = ImgCacheMode.Target(a) ?? ImgCacheMode.Parse("unsafe", "");
        var sourceCache = ImgCacheMode.Source(a) ?? ImgCacheMode.Parse("writeback", "");
        var (graph, source) = await ImgImage.OpenAsync(a, src, a.Get("-f"), readOnly: true, cache: sourceCache).ConfigureAwait(false);
        await using (graph.ConfigureAwait(false))
        {
            if (a.Get("-l") is { } snapshot)
                await ImgImage.LoadSnapshotAsync(source, snapshot).ConfigureAwait(false);
            long size = source.Length;
            // qemu-img's read lock keeps the target from being one of the source's own files; our readers share
            // everything, so the same refusal is made here before creating the target truncates the source.
            if (SourceFiles.Includes(source, dst))
                throw ImgTargetLock.Refused(dst);
            if (!a.Has("-n"))
            {
                values.Set("size", size.ToString(CultureInfo.InvariantCulture));
                var plan = format.PlanCreate(values);
                if (compress && plan.Encrypted)
                    throw new ImgUsageException("Compression and encryption not supported at the same time");
                if (plan.Encrypted && ImgEncryptOptions.FindKey(values, secrets) == null)
                    throw new ImgUsageException($"{dst}: {ImgImage.KeyRequiredMessage}");
                plan.Validate();
                await ImgTargetLock.CreateAsync(dst, async () => await plan.CreateAsync(dst, CancellationToken.None).ConfigureAwait(false)).ConfigureAwait(false);
            }

            var targetOptions = ImageFormats.ImageOptions(dst, outFmt, readOnly: false, "img1");
            targetOptions.Cache = targetCache;
            BlockNode target;
            try
            {
                target = await graph.AddAsync(targetOptions).ConfigureAwait(false);
            }
            catch (BlockException ex)
            {
                throw ImageOpenException.Wrap(dst, ex);
            }

            if (compress && target.Encrypted)
                throw new ImgUsageException("Compression and encryption not supported at the same time");
            ImgEncryptOptions.UnlockTarget(target, dst, values, secrets);
            // Checked before the first write: a copy that stops at the target's end would leave it half overwritten.
            if (a.Has("-n") && target.Length < size)
                throw new ImgUsageException("output file is smaller than input file");
            var copier = new ConvertCopier(source, target, new ConvertSettings
            {
                Streams = streams,
                OutOfOrder = a.Has("-W"),
                Compress = compress,
                MinSparse = minSparse,
                TopOnly = backing != null,
                // A target we just created without a backing file reads as zeros; with -n only the user knows.
                TargetIsZero = a.Has("-n") ? a.Has("--target-is-zero") : backing == null,
                Progress = progress ? new ImgProgress(true) : null,
            });
            await copier.RunAsync().ConfigureAwait(false);
            await target.FlushAsync().ConfigureAwait(false);
        }

        return 0;
    }

    /// <summary>
    /// -S: qemu-img counts it in 512-byte sectors and caps it at its largest copy buffer (16 MiB), so other
    /// values are refused rather than rounded.
    /// </summary>
    private static long ParseMinSparse(string text)
    {
        long value;
        try
        {
            value = ImgArgs.ParseSize(text);
        }
        catch (ImgUsageException)
        {
            throw new ImgUsageException("Invalid buffer size for sparse output specified. You may use k, M, G, T, P or E suffixes for kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
        }

        if (value % 512 != 0 || value > 16 << 20)
            throw new ImgUsageException("Invalid buffer size for sparse output specified. Valid sizes are multiples of 512 up to 16777216. Select 0 to disable sparse detection (fully allocates output).");
        return value;
    }
}
