using System.Buffers;
using System.Globalization;
using SharpBlock.Drivers.Format.Qcow2;
using SharpBlock.Drivers.Format.Raw;
using SharpBlock.Graph;

namespace SharpBlock.Cli.Img;

/// <summary>
/// `img convert [-p] [-c] [-q] [-n] [-W] [-m N] [-S SIZE] [-B BACKING] [-t CACHE] [-T CACHE] [-f FMT] [-O FMT]
/// [-o OPTIONS] SRC DST`: copies the guest-visible content of SRC (its whole backing chain) into a new image.
/// Ranges that read as zeros stay holes in the target (runs shorter than -S are written, -S 0 writes all).
/// With -B the target gets that backing file and only what SRC's top image holds is copied.
/// </summary>
internal static class ImgConvert
{
    private const int Chunk = 2 << 20;

    public static async Task<int> RunAsync(string[] argv)
    {
        var a = ImgArgs.Parse(argv, "fOoSBmtTl", "pcqnhUW", ["object", "target-image-opts"], ["force-share", "image-opts", "target-is-zero"]);
        if (a.Positional.Count != 2)
            throw new ImgUsageException("Expecting one source and one target file name");
        string src = a.Positional[0];
        string dst = a.Positional[1];
        string outFmt = a.Get("-O") ?? "raw";
        bool compress = a.Has("-c");
        long minSparse = a.Get("-S") is { } sparse ? ImgCreate.ParseSize(sparse) : 4096;
        string? backing = a.Get("-B");
        // -W (out-of-order writes), -m (parallel requests) and the cache modes are accepted for scripts'
        // sake; the copy runs in order through the page cache.
        if (a.Get("-m") is { } m && (!int.TryParse(m, System.Globalization.NumberStyles.None, CultureInfo.InvariantCulture, out int streams) || streams < 1 || streams > 16))
            throw new ImgUsageException("Invalid number of coroutines. Allowed number of coroutines is between 1 and 16");
        if (backing != null && a.Has("-n"))
            throw new ImgUsageException("Backing file (-B) cannot be used together with -n");
        bool progress = a.Has("-p") && !a.Has("-q");
        var opts = ImgCreate.ParseOptions(a.GetAll("-o"));
        if (compress && outFmt != "qcow2")
            throw new ImgUsageException("Compression not supported for this file format");
        bool encrypt = ImgEncryptOptions.IsEncrypted(opts, outFmt);
        if (compress && encrypt)
            throw new ImgUsageException("Compression and encryption not supported at the same time");
        if (encrypt && !a.Has("-n") && ImgEncryptOptions.FindKey(opts, ImgSecrets.Parse(a.GetAll("--object"))) == null)
            throw new ImgUsageException($"{dst}: {ImgImage.KeyRequiredMessage}");

        var (graph, source) = await ImgImage.OpenAsync(a, src, a.Get("-f"), readOnly: true).ConfigureAwait(false);
        await using (graph.ConfigureAwait(false))
        {
            long size = source.Length;
            var prealloc = ImgCreate.ParsePrealloc(opts.GetValueOrDefault("preallocation"));
            if (!a.Has("-n"))
            {
                if (outFmt == "qcow2")
                {
                    await Qcow2Creator.CreateAsync(dst, new Qcow2CreateOptions
                    {
                        Size = size,
                        ClusterSize = opts.TryGetValue("cluster_size", out var cs) ? (int)ImgCreate.ParseSize(cs) : 65536,
                        Compat = opts.GetValueOrDefault("compat") ?? "1.1",
                        LazyRefcounts = opts.GetValueOrDefault("lazy_refcounts") == "on",
                        RefcountBits = opts.TryGetValue("refcount_bits", out var rb) ? int.Parse(rb, CultureInfo.InvariantCulture) : 16,
                        Preallocation = prealloc,
                        Encrypted = encrypt,
                        BackingFile = backing,
                        BackingFormat = backing != null ? opts.GetValueOrDefault("backing_fmt") ?? await Qcow2Driver.ProbeAsync(Qcow2Driver.ResolveBacking(dst, backing), CancellationToken.None).ConfigureAwait(false) : null,
                    }).ConfigureAwait(false);
                }
                else if (outFmt == "raw")
                {
                    if (backing != null)
                        throw new ImgUsageException("Format 'raw' does not support backing files");
                    await RawCreator.CreateAsync(dst, size, prealloc).ConfigureAwait(false);
                }
                else
                {
                    throw new ImgUsageException($"Unknown file format '{outFmt}'");
                }
            }

            var target = await graph.AddAsync(Qcow2Driver.ImageOptions(dst, outFmt, readOnly: false, "img1")).ConfigureAwait(false);
            ImgEncryptOptions.UnlockTarget(target, dst, opts, ImgSecrets.Parse(a.GetAll("--object")));
            await CopyAsync(source, target, compress, progress, minSparse, topOnly: backing != null).ConfigureAwait(false);
            await target.FlushAsync().ConfigureAwait(false);
        }

        return 0;
    }

    private static async Task CopyAsync(BlockNode source, BlockNode target, bool compress, bool progress, long minSparse, bool topOnly)
    {
        long size = source.Length;
        int unit = target is Qcow2Node q ? q.ClusterSize : 4096;
        int chunk = compress ? unit : Math.Max(Chunk, unit);
        byte[] buf = ArrayPool<byte>.Shared.Rent(chunk);
        int lastShown = -1;
        try
        {
            if (progress)
                ShowProgress(0, ref lastShown);
            long offset = 0;
            while (offset < size)
            {
                // Work in target-aligned pieces so a piece never straddles a cluster we might compress.
                long pieceEnd = Math.Min(size, (offset / chunk * chunk) + chunk);
                var (st, len) = await ImgMap.StatusAboveAsync(source, offset, pieceEnd - offset).ConfigureAwait(false);
                if (topOnly && st.Entry.Depth > 0)
                {
                    // The target's backing file stands in for what SRC's backing chain holds.
                    offset += len;
                }
                else if (topOnly && st.Entry.Zero && !st.Entry.Data)
                {
                    // Zeros the top image decides must be written: the backing file below may hold data.
                    await target.WriteZeroesAsync(offset, len).ConfigureAwait(false);
                    offset += len;
                }
                else if (st.Entry.Zero && !st.Entry.Data && !compress && minSparse > 0 && len >= minSparse)
                {
                    offset += len;
                }
                else
                {
                    if (compress)
                        len = pieceEnd - offset;
                    int n = (int)len;
                    var mem = buf.AsMemory(0, n);
                    await source.ReadAsync(offset, mem).ConfigureAwait(false);
                    if (mem.Span.ContainsAnyExcept((byte)0) || minSparse == 0 || (topOnly && !compress))
                    {
                        if (compress && target is Qcow2Node qc && offset % unit == 0)
                            await qc.WriteCompressedAsync(offset, mem).ConfigureAwait(false);
                        else
                            await target.WriteAsync(offset, mem).ConfigureAwait(false);
                    }

                    offset += n;
                }

                if (progress)
                    ShowProgress((int)(offset * 10000 / Math.Max(1, size)), ref lastShown);
            }

            if (progress)
                Console.Out.Write("\n");
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buf);
        }
    }

    private static void ShowProgress(int hundredths, ref int last)
    {
        if (hundredths / 100 == last / 100 && last >= 0 && hundredths != 10000)
            return;
        last = hundredths;
        Console.Out.Write(string.Format(CultureInfo.InvariantCulture, "    ({0:0.00}/100%)\r", hundredths / 100.0));
        Console.Out.Flush();
    }
}
