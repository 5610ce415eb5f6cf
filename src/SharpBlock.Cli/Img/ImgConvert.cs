using System.Globalization;
using SharpBlock.Drivers;
using SharpBlock.Drivers.Format.Qcow2;
using SharpBlock.Drivers.Format.Raw;
using SharpBlock.Drivers.Protocol.File;
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
            return ImgOptionHelp.PrintCreate(a.Get("-O") ?? "raw");
        if (a.Positional.Count != 2)
            throw new ImgUsageException("Expecting one source and one target file name");
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
        bool compress = a.Has("-c");
        long minSparse = a.Get("-S") is { } sparse ? ParseMinSparse(sparse) : 4096;
        string? backing = a.Get("-B");
        int streams = 8;
        if (a.Get("-m") is { } m && (!int.TryParse(m, NumberStyles.None, CultureInfo.InvariantCulture, out streams) || streams < 1 || streams > 16))
            throw new ImgUsageException("Invalid number of coroutines. Allowed number of coroutines is between 1 and 16");
        if (a.Has("--target-is-zero") && !a.Has("-n"))
            throw new ImgUsageException("--target-is-zero requires use of -n flag");
        if (backing != null && a.Has("-n"))
            throw new ImgUsageException("Backing file (-B) cannot be used together with -n");
        bool progress = a.Has("-p") && !a.Has("-q");
        var opts = ImgCreate.ParseOptions(a.GetAll("-o"));
        if (targetKeySecret != null)
            opts.TryAdd(ImgEncryptOptions.KeySecret, targetKeySecret);
        if (backing != null && outFmt == "raw")
            throw new ImgUsageException("Backing file not supported for file format 'raw'");
        // qemu-img 7.2 no longer guesses the backing file's format: probing a file the user names as backing is
        // how a raw image gets read as qcow2.
        if (backing != null && a.Get("-F") == null && !opts.ContainsKey("backing_fmt"))
            throw new ImgUsageException("Use of backing file requires explicit backing format");
        if (compress && outFmt != "qcow2")
            throw new ImgUsageException("Compression not supported for this file format");
        bool encrypt = ImgEncryptOptions.IsEncrypted(opts, outFmt);
        if (compress && encrypt)
            throw new ImgUsageException("Compression and encryption not supported at the same time");
        if (encrypt && !a.Has("-n") && ImgEncryptOptions.FindKey(opts, ImgSecrets.Parse(a.GetAll("--object"))) == null)
            throw new ImgUsageException($"{dst}: {ImgImage.KeyRequiredMessage}");

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
            var prealloc = ImgCreate.ParsePrealloc(opts.GetValueOrDefault("preallocation"));
            // qemu-img's read lock keeps the target from being one of the source's own files; our readers share
            // everything, so the same refusal is made here before creating the target truncates the source.
            if (ReadsFile(source, dst))
                throw new BlockException(Errno.EAGAIN, $"Could not open '{dst}': Failed to get \"write\" lock");
            if (!a.Has("-n"))
            {
                await ImgTargetLock.CreateAsync(dst, async () =>
                {
                    if (outFmt == "qcow2")
                    {
                        await Qcow2Creator.CreateAsync(dst, new Qcow2CreateOptions
                        {
                            Size = size,
                            ClusterSize = opts.TryGetValue("cluster_size", out var cs) ? (int)ImgCreate.ParseSize(cs) : 65536,
                            Compat = opts.GetValueOrDefault("compat") ?? "1.1",
                            LazyRefcounts = ImgCreate.ParseBool(opts.GetValueOrDefault("lazy_refcounts"), "lazy_refcounts"),
                            RefcountBits = opts.TryGetValue("refcount_bits", out var rb) ? ImgCreate.ParseInt(rb, "refcount_bits") : 16,
                            Preallocation = prealloc,
                            Encrypted = encrypt,
                            BackingFile = backing,
                            BackingFormat = backing != null ? a.Get("-F") ?? opts.GetValueOrDefault("backing_fmt") : null,
                        }).ConfigureAwait(false);
                    }
                    else if (outFmt == "raw")
                    {
                        await RawCreator.CreateAsync(dst, size, prealloc).ConfigureAwait(false);
                    }
                    else
                    {
                        var format = BlockDriverRegistry.Default.FindFormat(outFmt) ?? throw new ImgUsageException($"Unknown file format '{outFmt}'");
                        await format.CreateAsync(dst, size, backing, backing != null ? a.Get("-F") ?? opts.GetValueOrDefault("backing_fmt") : null, CancellationToken.None).ConfigureAwait(false);
                    }
                }).ConfigureAwait(false);
            }

            var targetOptions = ImageFormats.ImageOptions(dst, outFmt, readOnly: false, "img1");
            targetOptions.Cache = targetCache;
            BlockNode target;
            try
            {
                target = await graph.AddAsync(targetOptions).ConfigureAwait(false);
            }
            catch (BlockException ex) when (!ex.Message.StartsWith("Could not open", StringComparison.Ordinal))
            {
                throw new BlockException(ex.Errno, $"Could not open '{dst}': {ex.Message}", ex);
            }

            ImgEncryptOptions.UnlockTarget(target, dst, opts, ImgSecrets.Parse(a.GetAll("--object")));
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
            value = ImgCreate.ParseSize(text);
        }
        catch (ImgUsageException)
        {
            throw new ImgUsageException("Invalid buffer size for sparse output specified. You may use k, M, G, T, P or E suffixes for kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
        }

        if (value % 512 != 0 || value > 16 << 20)
            throw new ImgUsageException("Invalid buffer size for sparse output specified. Valid sizes are multiples of 512 up to 16777216. Select 0 to disable sparse detection (fully allocates output).");
        return value;
    }

    /// <summary>True when <paramref name="path"/> is one of the files under <paramref name="node"/> (its image, backing chain, data files).</summary>
    public static bool ReadsFile(BlockNode node, string path)
    {
        if (node is FileNode f && SameFile(f.Path, path))
            return true;
        foreach (var child in node.Children)
        {
            if (ReadsFile(child.Node, path))
                return true;
        }

        return false;
    }

    private static bool SameFile(string a, string b) => string.Equals(RealPath(a), RealPath(b), StringComparison.Ordinal);

    private static string RealPath(string path)
    {
        var full = Path.GetFullPath(path);
        return File.Exists(full) && new FileInfo(full).ResolveLinkTarget(returnFinalTarget: true) is { } target ? target.FullName : full;
    }
}
