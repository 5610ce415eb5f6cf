using System.Buffers;
using SharpBlock.Drivers;
using SharpBlock.Copy;

namespace SharpBlock.Cli.Img;

/// <summary>
/// `img dd [-f FMT] [-O OUTPUT_FMT] if=INPUT of=OUTPUT [bs=N] [count=N] [skip=N]`, with qemu-img's meaning:
/// count counts blocks from the start of the input, skipped ones included, so the output holds the input
/// from skip*bs up to min(count*bs, input size).
/// </summary>
internal static class ImgDd
{
    public static async Task<int> RunAsync(string[] argv)
    {
        var a = ImgArgs.Parse(argv, "fO", "U", ["object"], ["force-share", "image-opts"]);
        string? input = null, output = null;
        long bs = 512, count = -1, skip = 0;
        foreach (var p in a.Positional)
        {
            int eq = p.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
                throw new ImgUsageException($"unrecognized operand {p}");
            string key = p[..eq], value = p[(eq + 1)..];
            switch (key)
            {
                case "if": input = value; break;
                case "of": output = value; break;
                case "bs":
                    bs = ImgArgs.ParseSize(value);
                    if (bs <= 0)
                        throw new ImgUsageException($"invalid number: '{value}'");
                    break;
                case "count": count = ImgArgs.ParseSize(value); break;
                case "skip": skip = ImgArgs.ParseSize(value); break;
                default: throw new ImgUsageException($"unrecognized operand {p}");
            }
        }

        if (input == null)
            throw new ImgUsageException("Must specify input");
        if (output == null)
            throw new ImgUsageException("Must specify output");
        string outFmt = a.Get("-O") ?? "raw";
        var format = ImgNewImage.Format(outFmt);
        var (graph, source) = await ImgImage.OpenAsync(a, input, a.Get("-f"), readOnly: true).ConfigureAwait(false);
        await using (graph.ConfigureAwait(false))
        {
            long end = count >= 0 ? Math.Min(count * bs, source.Length) : source.Length;
            long start = Math.Min(skip * bs, end);
            long size = end - start;
            if (SourceFiles.Includes(source, output))
                throw ImgTargetLock.Refused(output);
            // dd takes no -o: the format's default image.
            await ImgTargetLock.CreateAsync(output, async () => await format.CreateAsync(output, size, null, null, CancellationToken.None).ConfigureAwait(false)).ConfigureAwait(false);
            var target = await graph.AddAsync(ImageFormats.ImageOptions(output, outFmt, readOnly: false, "img1")).ConfigureAwait(false);
            int chunk = (int)Math.Clamp(bs, 512, 4 << 20);
            byte[] buf = ArrayPool<byte>.Shared.Rent(chunk);
            try
            {
                for (long done = 0; done < size;)
                {
                    int n = (int)Math.Min(chunk, size - done);
                    await source.ReadAsync(start + done, buf.AsMemory(0, n)).ConfigureAwait(false);
                    if (buf.AsSpan(0, n).ContainsAnyExcept((byte)0))
                        await target.WriteAsync(done, buf.AsMemory(0, n)).ConfigureAwait(false);
                    done += n;
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buf);
            }

            await target.FlushAsync().ConfigureAwait(false);
        }

        return 0;
    }
}
