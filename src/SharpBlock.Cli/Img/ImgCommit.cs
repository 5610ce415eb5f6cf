using System.Buffers;
using SharpBlock.Drivers;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Jobs;

namespace SharpBlock.Cli.Img;

/// <summary>
/// `img commit [-f FMT] [-b BASE] [-d] [-p] [-q] [-r RATE] FILE`: writes what FILE (and the images between it
/// and BASE) hold into BASE, by default FILE's own backing file. FILE is emptied afterwards unless -d (or -b,
/// which implies -d), so the chain reads the same before and after.
/// </summary>
internal static class ImgCommit
{
    private const int Chunk = 1 << 20;

    public static async Task<int> RunAsync(string[] argv)
    {
        var a = ImgArgs.Parse(argv, "fbtr", "dpqU", ["object"], ["force-share", "image-opts"]);
        if (a.Positional.Count != 1)
            throw ImgUsageException.Syntax("Expecting one image file name");
        var spec = ImgImage.Spec(a, a.Positional[0], a.Get("-f"));
        string path = spec.Path;
        long rate = a.Get("-r") is { } r ? ImgArgs.ParseSize(r) : 0;
        bool drop = !a.Has("-d") && a.Get("-b") == null;

        string format = spec.Format ?? await ImageFormats.ProbeNameAsync(path, CancellationToken.None).ConfigureAwait(false);
        var options = ImageFormats.ImageOptions(path, format, readOnly: false, "img0");
        if (ImgCacheMode.Target(a) is { } cache)
            options.Cache = cache;
        await using var graph = BlockGraphs.Create();
        BlockNode top;
        try
        {
            top = await graph.AddAsync(options).ConfigureAwait(false);
        }
        catch (BlockException ex)
        {
            throw ImageOpenException.Wrap(path, ex);
        }

        ImgImage.Unlock(a, top, spec, a.Positional[0]);
        if (top.Backing == null)
            throw new BlockException(Errno.EINVAL, "Image does not have a backing file");
        var baseNode = top.Backing;
        if (a.Get("-b") is { } b)
        {
            baseNode = BackingChain.FindByFilename(top.Backing, BackingFiles.Resolve(path, b)) ?? BackingChain.FindByFilename(top.Backing, b)
                ?? throw new BlockException(Errno.ENOENT, $"Did not find '{b}' in the backing chain of '{path}'");
        }

        await baseNode.ReopenAsync(readOnly: false).ConfigureAwait(false);
        if (baseNode.Length < top.Length)
            await baseNode.TruncateAsync(top.Length).ConfigureAwait(false);

        var progress = new ImgProgress(a.Has("-p") && !a.Has("-q"), startTwice: true);
        var limiter = new JobRateLimiter { Speed = rate };
        byte[] buf = ArrayPool<byte>.Shared.Rent(Chunk);
        try
        {
            long len = top.Length;
            for (long off = 0; off < len;)
            {
                var (copy, n) = await BackingChain.AllocatedAboveAsync(top, baseNode, off, Math.Min(Chunk, len - off)).ConfigureAwait(false);
                if (copy)
                {
                    var mem = buf.AsMemory(0, (int)n);
                    await top.ReadAsync(off, mem).ConfigureAwait(false);
                    if (mem.Span.ContainsAnyExcept((byte)0))
                        await baseNode.WriteAsync(off, mem).ConfigureAwait(false);
                    else
                        await baseNode.WriteZeroesAsync(off, n).ConfigureAwait(false);
                    if (limiter.Account(n) is { } wait && wait > TimeSpan.Zero)
                        await Task.Delay(wait).ConfigureAwait(false);
                }

                off += n;
                progress.Report(off, len);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buf);
        }

        await baseNode.FlushAsync().ConfigureAwait(false);
        // A format that cannot empty itself (vmdk, vdi, ...) keeps its now redundant data, as qemu-img leaves it.
        if (drop && top is IMakeEmpty q)
            await q.MakeEmptyAsync().ConfigureAwait(false);

        progress.Complete(again: false);
        progress.End();
        if (!a.Has("-q"))
            Console.Out.WriteLine("Image committed.");
        return 0;
    }
}
