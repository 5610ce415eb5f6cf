using System.Buffers;
using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Cli.Img;

/// <summary>
/// `img compare [-f FMT] [-F FMT] [-s] [-p] [-q] A B`: 0 when the guest-visible contents are the same,
/// 1 with the first differing offset, 2 when an image cannot be opened. Images of different sizes compare
/// equal when the longer one reads as zeros past the shorter one's end (unless -s).
/// </summary>
internal static class ImgCompare
{
    // qemu-img's I/O buffer: the same chunks, so the same progress steps.
    private const int Chunk = 2 << 20;

    public static async Task<int> RunAsync(string[] argv)
    {
        var a = ImgArgs.Parse(argv, "fFT", "spqhU", ["object"], ["force-share", "image-opts"]);
        if (a.Positional.Count != 2)
            throw ImgUsageException.Syntax("Expecting two image file names");
        bool quiet = a.Has("-q");
        Schema.BlockdevCacheOptions? cache;
        try
        {
            cache = ImgCacheMode.Source(a);
        }
        catch (ImgUsageException ex)
        {
            // compare keeps exit code 1 for "different"; an error is 2.
            Console.Error.WriteLine("sharpblock: " + ex.Message);
            return 2;
        }

        BlockGraph? ga = null, gb = null;
        try
        {
            BlockNode na, nb;
            try
            {
                (ga, na) = await ImgImage.OpenAsync(a, a.Positional[0], a.Get("-f"), readOnly: true, cache: cache).ConfigureAwait(false);
                (gb, nb) = await ImgImage.OpenAsync(a, a.Positional[1], a.Get("-F") ?? a.Get("-f"), readOnly: true, cache: cache).ConfigureAwait(false);
            }
            catch (BlockException ex)
            {
                Console.Error.WriteLine("sharpblock: " + ex.Message);
                return 2;
            }

            var progress = new ImgProgress(a.Has("-p") && !quiet);
            long common = Math.Min(na.Length, nb.Length);
            if (na.Length != nb.Length)
            {
                if (a.Has("-s"))
                {
                    if (!quiet)
                        Console.Out.WriteLine("Strict mode: Image size mismatch!");
                    return 1;
                }
            }

            long total = Math.Max(na.Length, nb.Length);
            long? diff = await FirstDifferenceAsync(na, nb, common, progress, total).ConfigureAwait(false);
            if (diff == null && na.Length != nb.Length)
            {
                // qemu-img warns only once the common part matched: a content mismatch there is the verdict alone.
                if (!quiet)
                    Console.Out.WriteLine("Warning: Image size mismatch!");
                var longer = na.Length > nb.Length ? na : nb;
                diff = await FirstNonZeroAsync(longer, common, progress, total).ConfigureAwait(false);
            }

            // qemu-img shows 100% only when it got there, and ends the progress line after its verdict.
            if (diff == null)
                progress.Complete(again: false);
            if (!quiet)
                Console.Out.WriteLine(diff is { } at ? $"Content mismatch at offset {at}!" : "Images are identical.");
            progress.End();
            return diff == null ? 0 : 1;
        }
        catch (BlockException ex)
        {
            Console.Error.WriteLine("sharpblock: " + ex.Message);
            return 2;
        }
        finally
        {
            if (ga != null)
                await ga.DisposeAsync().ConfigureAwait(false);
            if (gb != null)
                await gb.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Compares chunk by chunk; ranges both sides know to be zero are skipped without reading.</summary>
    private static async Task<long?> FirstDifferenceAsync(BlockNode a, BlockNode b, long length, ImgProgress progress, long total)
    {
        byte[] ba = ArrayPool<byte>.Shared.Rent(Chunk), bb = ArrayPool<byte>.Shared.Rent(Chunk);
        try
        {
            for (long off = 0; off < length;)
            {
                long n = Math.Min(Chunk, length - off);
                var sa = await a.GetBlockStatusAsync(off, n).ConfigureAwait(false);
                var sb = await b.GetBlockStatusAsync(off, n).ConfigureAwait(false);
                n = Math.Min(sa.Length, sb.Length);
                if (!(sa.IsZero && sb.IsZero))
                {
                    await a.ReadAsync(off, ba.AsMemory(0, (int)n)).ConfigureAwait(false);
                    await b.ReadAsync(off, bb.AsMemory(0, (int)n)).ConfigureAwait(false);
                    int at = ba.AsSpan(0, (int)n).CommonPrefixLength(bb.AsSpan(0, (int)n));
                    if (at < n)
                        return off + at;
                }

                off += n;
                progress.Report(off, total);
            }

            return null;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(ba);
            ArrayPool<byte>.Shared.Return(bb);
        }
    }

    private static async Task<long?> FirstNonZeroAsync(BlockNode node, long from, ImgProgress progress, long total)
    {
        byte[] buf = ArrayPool<byte>.Shared.Rent(Chunk);
        try
        {
            for (long off = from; off < node.Length;)
            {
                long n = Math.Min(Chunk, node.Length - off);
                var st = await node.GetBlockStatusAsync(off, n).ConfigureAwait(false);
                n = st.Length;
                if (!st.IsZero)
                {
                    await node.ReadAsync(off, buf.AsMemory(0, (int)n)).ConfigureAwait(false);
                    int at = buf.AsSpan(0, (int)n).IndexOfAnyExcept((byte)0);
                    if (at >= 0)
                        return off + at;
                }

                off += n;
                progress.Report(off, total);
            }

            return null;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buf);
        }
    }
}
