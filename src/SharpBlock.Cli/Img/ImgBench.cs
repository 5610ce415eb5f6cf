using System.Diagnostics;
using System.Globalization;
using SharpBlock.Drivers;
using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Cli.Img;

/// <summary>
/// `img bench [-c COUNT] [-d DEPTH] [-f FMT] [-s SIZE] [-S STEP] [-o OFFSET] [-t CACHE] [-w] [--pattern=N] [-q] FILE`:
/// COUNT requests of SIZE bytes, DEPTH in flight, at offsets advancing by STEP and wrapping at the end.
/// </summary>
internal static class ImgBench
{
    public static async Task<int> RunAsync(string[] argv)
    {
        var a = ImgArgs.Parse(argv, "cdfsSotib", "wqhnU", ["pattern", "flush-interval", "object"], ["no-drain", "force-share", "image-opts"]);
        if (a.Positional.Count != 1)
            throw ImgUsageException.Syntax("Expecting one image file name");
        long count = Number(a, "-c", 75000, int.MaxValue, "Invalid request count specified");
        int depth = (int)Number(a, "-d", 64, int.MaxValue, "Invalid queue depth specified");
        int size = (int)Size(a, "-s", 4096, "Invalid buffer size specified");
        long step = Size(a, "-S", size, "Invalid step_size specified");
        long offset0 = Size(a, "-o", 0, "Invalid offset specified");
        bool write = a.Has("-w");
        byte pattern = (byte)Number(a, "--pattern", 0, 0xff, "Invalid pattern byte specified");
        long flushInterval = Number(a, "--flush-interval", 0, int.MaxValue, "Invalid flush interval specified");
        bool drain = !a.Has("--no-drain");
        string cache = a.Get("-t") ?? "writeback";
        if (depth < 1 || size < 1)
            throw new ImgUsageException("Invalid request count, depth or size");
        if (flushInterval > 0 && !write)
            throw new ImgUsageException("--flush-interval is only available in write tests");
        if (flushInterval > 0 && flushInterval < depth)
            throw new ImgUsageException("Flush interval can't be smaller than depth");

        string path = a.Positional[0];
        BlockdevOptions options;
        if (a.Has("--image-opts"))
        {
            // The argument is the image's options in key=value form, as --blockdev takes them. qemu-img's
            // --image-opts lets a key secret stand alone; the format it implies is the only one we read.
            // The same for a file child named only by its file name.
            if (path.Contains("encrypt.key-secret=", StringComparison.Ordinal) && !path.Contains("encrypt.format=", StringComparison.Ordinal))
                path += ",encrypt.format=aes";
            if (path.Contains("file.filename=", StringComparison.Ordinal) && !path.Contains("file.driver=", StringComparison.Ordinal))
                path += ",file.driver=file";
            options = Daemon.DaemonCommand.ParseBlockdev(path);
            options.ReadOnly = !write;
            options.NodeName ??= "bench";
        }
        else
        {
            string fmt = a.Get("-f") ?? await ImageFormats.ProbeNameAsync(path, CancellationToken.None).ConfigureAwait(false);
            options = ImageFormats.ImageOptions(path, fmt, readOnly: !write, "bench");
        }

        options.Cache = ImgCacheMode.Parse(cache, "Invalid cache mode");
        var graph = BlockGraphs.Create();
        await using (graph.ConfigureAwait(false))
        {
            foreach (var (id, secret) in ImgSecrets.Parse(a.GetAll("--object")).All)
                graph.Secrets.Add(id, secret);
            BlockNode node;
            try
            {
                node = await graph.AddAsync(options).ConfigureAwait(false);
            }
            catch (Errors.BlockException ex)
            {
                return ImgCommand.Fail($"Could not open '{path}': {ex.Message}");
            }

            long imageSize = node.Length;
            if (offset0 + size > imageSize)
                throw new ImgUsageException("Offset and request size exceed the image size");
            if (!a.Has("-q"))
            {
                Console.Out.WriteLine(string.Format(CultureInfo.InvariantCulture, "Sending {0} {1} requests, {2} bytes each, {3} in parallel (starting at offset {4}, step size {5})",
                    count, write ? "write" : "read", size, depth, offset0, step));
            }

            long next = 0;
            long nextOffset = offset0;
            object gate = new();
            var sw = Stopwatch.StartNew();
            // With --flush-interval and draining (the default), requests go in rounds of that many and each
            // round ends before its flush; with --no-drain every that-many completions start a flush while the
            // other requests go on.
            long round = flushInterval > 0 && drain ? flushInterval : Math.Max(1, count);
            long completed = 0;
            var flushes = new List<Task>();
            for (long roundEnd = Math.Min(round, count); ; roundEnd = Math.Min(roundEnd + round, count))
            {
                long end = roundEnd;
                var workers = new Task[Math.Min(depth, Math.Max(1, end - next))];
                for (int w = 0; w < workers.Length; w++)
                {
                    workers[w] = Task.Run(async () =>
                    {
                        byte[] buf = GC.AllocateUninitializedArray<byte>(size, pinned: true);
                        Array.Fill(buf, pattern);
                        while (true)
                        {
                            long off;
                            lock (gate)
                            {
                                if (next >= end)
                                    return;
                                next++;
                                off = nextOffset;
                                nextOffset += step;
                                if (nextOffset + size > imageSize)
                                    nextOffset = offset0;
                            }

                            if (write)
                                await node.WriteAsync(off, buf).ConfigureAwait(false);
                            else
                                await node.ReadAsync(off, buf).ConfigureAwait(false);
                            if (flushInterval > 0 && !drain && Interlocked.Increment(ref completed) % flushInterval == 0)
                            {
                                var flush = node.FlushAsync().AsTask();
                                lock (flushes)
                                    flushes.Add(flush);
                            }
                        }
                    });
                }

                await Task.WhenAll(workers).ConfigureAwait(false);
                if (flushInterval > 0 && drain)
                    await node.FlushAsync().ConfigureAwait(false);
                if (end >= count)
                    break;
            }

            await Task.WhenAll(flushes).ConfigureAwait(false);
            // Like qemu-img bench, the clock covers the requests only: the flush that makes them durable
            // comes after it (qemu-img's happens when the image is closed).
            sw.Stop();
            if (write)
                await node.FlushAsync().ConfigureAwait(false);
            if (!a.Has("-q"))
                Console.Out.WriteLine(string.Format(CultureInfo.InvariantCulture, "Run completed in {0:0.000} seconds.", sw.Elapsed.TotalSeconds));
        }

        return 0;
    }

    /// <summary>
    /// A count-like option, read as C's strtoul with base 0 reads it (decimal, 0x hex, leading-0 octal), every
    /// occurrence checked as qemu-img checks each one it meets; <paramref name="invalid"/> when out of range.
    /// </summary>
    private static long Number(ImgArgs a, string key, long fallback, long max, string invalid)
    {
        long value = fallback;
        foreach (string text in a.GetAll(key))
        {
            int radix = text.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? 16 : text.Length > 1 && text[0] == '0' ? 8 : 10;
            string digits = radix == 16 ? text[2..] : text;
            if (digits.Length == 0)
                throw new ImgUsageException(invalid);
            value = 0;
            foreach (char ch in digits)
            {
                int d = char.IsAsciiDigit(ch) ? ch - '0' : char.IsAsciiHexDigitLower(ch) ? ch - 'a' + 10 : char.IsAsciiHexDigitUpper(ch) ? ch - 'A' + 10 : 99;
                if (d >= radix)
                    throw new ImgUsageException(invalid);
                value = (value * radix) + d;
                if (value > max)
                    throw new ImgUsageException(invalid);
            }
        }

        return value;
    }

    /// <summary>A size option with k/M/G... suffixes; <paramref name="invalid"/> leads qemu-img's message when it does not parse.</summary>
    private static long Size(ImgArgs a, string key, long fallback, string invalid)
    {
        long value = fallback;
        foreach (string text in a.GetAll(key))
        {
            try
            {
                value = ImgArgs.ParseSize(text);
            }
            catch (ImgUsageException)
            {
                throw new ImgUsageException(invalid + ". You may use k, M, G, T, P or E suffixes for kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
            }

            if (value > int.MaxValue && key == "-s")
                throw new ImgUsageException(invalid + ". Must be between 0 and 2147483647.");
        }

        return value;
    }
}
