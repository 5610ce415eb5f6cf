using System.Diagnostics;
using System.Globalization;
using SharpBlock.Drivers.Format.Qcow2;
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
            throw new ImgUsageException("Expecting one image file name");
        var ci = CultureInfo.InvariantCulture;
        long count = a.Get("-c") is { } c ? long.Parse(c, ci) : 75000;
        int depth = a.Get("-d") is { } d ? int.Parse(d, ci) : 64;
        int size = a.Get("-s") is { } s ? (int)ImgCreate.ParseSize(s) : 4096;
        long step = a.Get("-S") is { } st ? ImgCreate.ParseSize(st) : size;
        long offset0 = a.Get("-o") is { } o ? ImgCreate.ParseSize(o) : 0;
        bool write = a.Has("-w");
        byte pattern = a.Get("--pattern") is { } p ? byte.Parse(p, ci) : (byte)0;
        string cache = a.Get("-t") ?? "writeback";
        if (depth < 1 || size < 1 || count < 0)
            throw new ImgUsageException("Invalid request count, depth or size");

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
            string fmt = a.Get("-f") ?? await Qcow2Driver.ProbeAsync(path, CancellationToken.None).ConfigureAwait(false);
            options = Qcow2Driver.ImageOptions(path, fmt, readOnly: !write, "bench");
        }

        options.Cache = ImgCacheMode.Parse(cache);
        var graph = new BlockGraph();
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
                Console.Out.WriteLine(string.Format(ci, "Sending {0} {1} requests, {2} bytes each, {3} in parallel (starting at offset {4}, step size {5})",
                    count, write ? "write" : "read", size, depth, offset0, step));
            }

            long next = 0;
            long nextOffset = offset0;
            object gate = new();
            var sw = Stopwatch.StartNew();
            var workers = new Task[Math.Min(depth, Math.Max(1, count))];
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
                            if (next >= count)
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
                    }
                });
            }

            await Task.WhenAll(workers).ConfigureAwait(false);
            // Like qemu-img bench, the clock covers the requests only: the flush that makes them durable
            // comes after it (qemu-img's happens when the image is closed).
            sw.Stop();
            if (write)
                await node.FlushAsync().ConfigureAwait(false);
            if (!a.Has("-q"))
                Console.Out.WriteLine(string.Format(ci, "Run completed in {0:0.000} seconds.", sw.Elapsed.TotalSeconds));
        }

        return 0;
    }
}
