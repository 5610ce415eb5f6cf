using System.Buffers;
using System.Globalization;
using SharpBlock.Drivers.Format.Qcow2;
using SharpBlock.Drivers.Format.Raw;
using SharpBlock.Graph;

namespace SharpBlock.Cli.Img;

/// <summary>
/// `img convert [-p] [-c] [-q] [-f FMT] [-O FMT] [-o OPTIONS] SRC DST`: copies the guest-visible content of
/// SRC (its whole backing chain) into a new image. Ranges that read as zeros stay holes in the target.
/// </summary>
internal static class ImgConvert
{
    private const int Chunk = 2 << 20;

    public static async Task<int> RunAsync(string[] argv)
    {
        var a = ImgArgs.Parse(argv, "fOoS", "pcqnhU", [], ["force-share"]);
        if (a.Positional.Count != 2)
            throw new ImgUsageException("Expecting one source and one target file name");
        string src = a.Positional[0];
        string dst = a.Positional[1];
        string outFmt = a.Get("-O") ?? "raw";
        bool compress = a.Has("-c");
        bool progress = a.Has("-p") && !a.Has("-q");
        var opts = ImgCreate.ParseOptions(a.GetAll("-o"));
        if (compress && outFmt != "qcow2")
            throw new ImgUsageException("Compression not supported for this file format");

        var (graph, source) = await ImgImage.OpenAsync(src, a.Get("-f"), readOnly: true).ConfigureAwait(false);
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
                    }).ConfigureAwait(false);
                }
                else if (outFmt == "raw")
                {
                    await RawCreator.CreateAsync(dst, size, prealloc).ConfigureAwait(false);
                }
                else
                {
                    throw new ImgUsageException($"Unknown file format '{outFmt}'");
                }
            }

            var target = await graph.AddAsync(Qcow2Driver.ImageOptions(dst, outFmt, readOnly: false, "img1")).ConfigureAwait(false);
            await CopyAsync(source, target, compress, progress).ConfigureAwait(false);
            await target.FlushAsync().ConfigureAwait(false);
        }

        return 0;
    }

    private static async Task CopyAsync(BlockNode source, BlockNode target, bool compress, bool progress)
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
                if (st.Entry.Zero && !st.Entry.Data && !compress)
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
                    if (mem.Span.ContainsAnyExcept((byte)0))
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
