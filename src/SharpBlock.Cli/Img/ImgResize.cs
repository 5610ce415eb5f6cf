using System.Buffers;
using SharpBlock.Drivers;
using SharpBlock.Drivers.Creation;
using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Cli.Img;

/// <summary>
/// `img resize [--shrink] [--preallocation=MODE] [-f FMT] [-q] FILE [+|-]SIZE`: grows any image; shrinks only
/// with --shrink.
/// </summary>
internal static class ImgResize
{
    public static async Task<int> RunAsync(string[] argv)
    {
        // A leading '-' of a relative size is not an option: take it out before option parsing.
        var args = argv.ToList();
        string? sizeArg = null;
        if (args.Count > 0 && args[^1].StartsWith('-') && args[^1].Length > 1 && char.IsDigit(args[^1][1]))
        {
            sizeArg = args[^1];
            args.RemoveAt(args.Count - 1);
        }

        var a = ImgArgs.Parse([.. args], "fo", "qU", ["preallocation", "object"], ["shrink", "force-share", "image-opts"]);
        if (sizeArg != null)
            a.Positional.Add(sizeArg);
        if (a.Positional.Count != 2)
            throw ImgUsageException.Syntax("Not enough arguments");
        string text = a.Positional[1];
        int sign = text[0] == '+' ? 1 : text[0] == '-' ? -1 : 0;
        long amount = ImgArgs.ParseSize(sign != 0 ? text[1..] : text);
        var prealloc = a.Get("--preallocation") switch
        {
            null or "off" => Preallocation.Off,
            "metadata" => Preallocation.Metadata,
            "falloc" => Preallocation.Falloc,
            "full" => Preallocation.Full,
            var other => throw new ImgUsageException($"Invalid preallocation mode '{other}'"),
        };

        var (graph, node) = await ImgImage.OpenAsync(a, a.Positional[0], a.Get("-f"), readOnly: false).ConfigureAwait(false);
        await using (graph.ConfigureAwait(false))
        {
            long size = sign == 0 ? amount : node.Length + (sign * amount);
            if (size < 0)
                throw new ImgUsageException("New image size must be positive");
            if (size < node.Length && !a.Has("--shrink"))
            {
                Console.Error.WriteLine("sharpblock: Use the --shrink option to perform a shrink operation.");
                Console.Error.WriteLine("sharpblock: warning: Shrinking an image will delete all data beyond the shrunken image's end. Before performing such an operation, make sure there is no important data there.");
                return 1;
            }

            // A format may want whole units (qcow2: sectors). The driver itself accepts a grow to any length, because mirror and
            // commit size targets to their source; a user asking for one is told what qemu-img tells.
            if (node is IResizeRules rules && size % rules.SizeGranularity != 0)
                throw new ImgUsageException($"The new size must be a multiple of {rules.SizeGranularity}");
            if (prealloc != Preallocation.Off && size < node.Length)
                throw new ImgUsageException("Preallocation can only be used for growing images");
            if (prealloc == Preallocation.Metadata && node is not IResizeRules { PreallocatesMetadata: true })
                throw new ImgUsageException("Unsupported preallocation mode: metadata");

            try
            {
                long oldSize = node.Length;
                await node.TruncateAsync(size).ConfigureAwait(false);
                if (prealloc != Preallocation.Off)
                    await AllocateAsync(node, oldSize, size).ConfigureAwait(false);
                await node.FlushAsync().ConfigureAwait(false);
            }
            catch (BlockException ex)
            {
                Console.Error.WriteLine("sharpblock: " + ex.Message);
                return 1;
            }
        }

        if (!a.Has("-q"))
            Console.Out.WriteLine("Image resized.");
        return 0;
    }

    /// <summary>
    /// --preallocation: the grown part is written with zeros, so it owns host space (and, in qcow2, clusters)
    /// as each mode promises; the old part is left as it was. For qcow2's metadata mode this allocates the data
    /// too, more than qemu-img does, but the guest sees the same zeros and the image checks clean.
    /// </summary>
    private static async Task AllocateAsync(BlockNode node, long from, long to)
    {
        byte[] zeros = ArrayPool<byte>.Shared.Rent(1 << 20);
        try
        {
            Array.Clear(zeros);
            for (long o = from; o < to; o += zeros.Length)
                await node.WriteAsync(o, zeros.AsMemory(0, (int)Math.Min(zeros.Length, to - o))).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(zeros);
        }
    }
}
