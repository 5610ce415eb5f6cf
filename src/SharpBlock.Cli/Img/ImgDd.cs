using System.Buffers;
using SharpBlock.Drivers;
using SharpBlock.Drivers.Format.Qcow2;
using SharpBlock.Drivers.Format.Raw;
using SharpBlock.Errors;

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
                    bs = ImgCreate.ParseSize(value);
                    if (bs <= 0)
                        throw new ImgUsageException($"invalid number: '{value}'");
                    break;
                case "count": count = ImgCreate.ParseSize(value); break;
                case "skip": skip = ImgCreate.ParseSize(value); break;
                default: throw new ImgUsageException($"unrecognized operand {p}");
            }
        }

        if (input == null)
            throw new ImgUsageException("Must specify input");
        if (output == null)
            throw new ImgUsageException("Must specify output");
        string outFmt = a.Get("-O") ?? "raw";
        var (graph, source) = await ImgImage.OpenAsync(a, input, a.Get("-f"), readOnly: true).ConfigureAwait(false);
        await using (graph.ConfigureAwait(false))
        {
            long end = count >= 0 ? Math.Min(count * bs, source.Length) : source.Length;
            long start = Math.Min(skip * bs, end);
            long size = end - start;
            if (outFmt is not ("qcow2" or "raw"))
                throw new ImgUsageException($"Unknown file format '{outFmt}'");
            if (ImgConvert.ReadsFile(source, output))
                throw new BlockException(Errno.EAGAIN, $"Could not open '{output}': Failed to get \"write\" lock");
            await ImgTargetLock.CreateAsync(output, async () =>
            {
                if (outFmt == "qcow2")
                    await Qcow2Creator.CreateAsync(output, new Qcow2CreateOptions { Size = size }).ConfigureAwait(false);
                else
                    await RawCreator.CreateAsync(output, size).ConfigureAwait(false);
            }).ConfigureAwait(false);
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
