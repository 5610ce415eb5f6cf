using System.Buffers;
using SharpBlock.Drivers;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Cli.Img;

/// <summary>
/// `img rebase [-f FMT] [-F BACKING_FMT] [-u] [-p] [-q] -b BACKING FILE`. Safe mode (the default) first copies
/// into FILE every range it does not hold itself where the old and the new backing chain differ, so what the
/// guest sees never changes; -u only rewrites the name in the header. `-b ""` detaches FILE from any backing.
/// </summary>
internal static class ImgRebase
{
    // qemu-img's I/O buffer: the same chunks, so the same progress steps.
    private const int Chunk = 2 << 20;

    public static async Task<int> RunAsync(string[] argv)
    {
        var a = ImgArgs.Parse(argv, "fFbtT", "upqU", ["object"], ["force-share", "image-opts"]);
        if (a.Positional.Count != 1)
            throw ImgUsageException.Syntax("Expecting one image file name");
        var spec = ImgImage.Spec(a, a.Positional[0], a.Get("-f"));
        string path = spec.Path;
        string newBacking = a.Get("-b") ?? throw new ImgUsageException("Must specify backing file (-b) or use unsafe mode (-u)");
        bool unsafeMode = a.Has("-u");
        string format = spec.Format ?? await ImageFormats.ProbeNameAsync(path, CancellationToken.None).ConfigureAwait(false);

        await using var graph = BlockGraphs.Create();
        var options = ImageFormats.ImageOptions(path, format, readOnly: false, "img0");
        if (ImgCacheMode.Target(a) is { } cache)
            options.Cache = cache;
        var sourceCache = ImgCacheMode.Source(a);
        // -u never opens the old backing file: it may be gone, which is often why the user rebases.
        if (unsafeMode)
            ImageFormats.Find(options.Driver)?.SetBacking(options, new BlockdevRef { Reference = "" });
        var top = await graph.AddAsync(options).ConfigureAwait(false);
        ImgImage.Unlock(a, top, spec, a.Positional[0]);
        if (top is not IBackingFileFormat backingFormat)
            throw new BlockException(Errno.EOPNOTSUPP, $"Format '{top.DriverName}' has no backing file to change");

        string? newFormat = null;
        BlockNode? newNode = null;
        if (newBacking.Length > 0)
        {
            string resolved = BackingFiles.Resolve(path, newBacking);
            // As with create, qemu-img 7.2 no longer probes the new backing file for its format.
            newFormat = a.Get("-F") ?? throw new ImgUsageException($"Could not change the backing file to '{newBacking}': backing format must be specified");
            if (!unsafeMode)
            {
                var newOptions = ImageFormats.ImageOptions(resolved, newFormat!, readOnly: true, "new-backing");
                if (sourceCache != null)
                    newOptions.Cache = sourceCache;
                newNode = await graph.AddAsync(newOptions).ConfigureAwait(false);
            }
        }

        if (!unsafeMode)
        {
            var progress = new ImgProgress(a.Has("-p") && !a.Has("-q"));
            await CopyDifferencesAsync(top, newNode, progress).ConfigureAwait(false);
            progress.Done();
        }

        await backingFormat.ChangeBackingFileAsync(newBacking.Length > 0 ? newBacking : null, newFormat).ConfigureAwait(false);
        return 0;
    }

    /// <summary>Where FILE falls through to its backing file, makes it hold the old content itself if the new backing differs.</summary>
    private static async Task CopyDifferencesAsync(BlockNode top, BlockNode? newBacking, ImgProgress progress)
    {
        byte[] oldBuf = ArrayPool<byte>.Shared.Rent(Chunk), newBuf = ArrayPool<byte>.Shared.Rent(Chunk);
        try
        {
            long len = top.Length;
            for (long off = 0; off < len;)
            {
                long n = Math.Min(Chunk, len - off);
                var st = await top.GetBlockStatusAsync(off, n).ConfigureAwait(false);
                n = st.Length;
                if (!st.IsAllocated)
                {
                    var oldMem = oldBuf.AsMemory(0, (int)n);
                    var newMem = newBuf.AsMemory(0, (int)n);
                    // Reading the top where it holds nothing reads the old backing chain.
                    await top.ReadAsync(off, oldMem).ConfigureAwait(false);
                    newMem.Span.Clear();
                    if (newBacking != null && off < newBacking.Length)
                        await newBacking.ReadAsync(off, newMem[..(int)Math.Min(n, newBacking.Length - off)]).ConfigureAwait(false);
                    if (!oldMem.Span.SequenceEqual(newMem.Span))
                        await top.WriteAsync(off, oldMem).ConfigureAwait(false);
                }

                off += n;
                progress.Report(off, len);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(oldBuf);
            ArrayPool<byte>.Shared.Return(newBuf);
        }

        await top.FlushAsync().ConfigureAwait(false);
    }
}
