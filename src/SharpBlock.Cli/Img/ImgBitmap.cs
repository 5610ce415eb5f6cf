using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Cli.Img;

/// <summary>
/// `img bitmap (--merge SOURCE | --add | --remove | --clear | --enable | --disable)... [-b SOURCE_FILE [-F SOURCE_FMT]]
/// [-g GRANULARITY] [-f FMT] FILE BITMAP`: changes the persistent bitmaps of an image, the operations applied in
/// the order given (as qemu-img does); they reach the image when it is closed.
/// </summary>
internal static class ImgBitmap
{
    private static readonly string[] Ops = ["add", "remove", "clear", "enable", "disable"];

    public static async Task<int> RunAsync(string[] argv)
    {
        var a = ImgArgs.Parse(argv, "bgfF", "hq", ["object", "merge"], ["add", "remove", "clear", "enable", "disable", "image-opts"]);
        var ops = OrderedOps(argv);
        if (ops.Count == 0)
            return ImgCommand.Fail("Need at least one of --add, --remove, --clear, --enable, --disable, or --merge");
        bool hasAdd = ops.Exists(o => o.Op == "add"), hasMerge = ops.Exists(o => o.Op == "merge");
        if (a.Get("-g") != null && !hasAdd)
            return ImgCommand.Fail("granularity only supported with --add");
        if (a.Get("-b") != null && !hasMerge)
            return ImgCommand.Fail("Merge bitmap source file only supported with --merge");
        if (a.Get("-F") != null && a.Get("-b") == null)
            return ImgCommand.Fail("-F only supported with -b");
        if (a.Positional.Count != 2)
            return ImgCommand.Fail("Expecting filename and bitmap name");
        long? granularity = a.Get("-g") is { } g ? ImgArgs.ParseSize(g) : null;
        string bitmap = a.Positional[1];

        var (graph, node) = await ImgImage.OpenAsync(a, a.Positional[0], a.Get("-f"), readOnly: false, noBacking: true).ConfigureAwait(false);
        await using (graph.ConfigureAwait(false))
        {
            BlockGraph? sourceGraph = null;
            BlockNode source = node;
            try
            {
                if (a.Get("-b") is { } sourceFile)
                    (sourceGraph, source) = await ImgImage.OpenAsync(a, sourceFile, a.Get("-F"), readOnly: true).ConfigureAwait(false);
                foreach (var (op, arg) in ops)
                {
                    try
                    {
                        await ApplyAsync(node, source, op, arg, bitmap, granularity).ConfigureAwait(false);
                    }
                    catch (BlockException ex)
                    {
                        return ImgCommand.Fail($"Operation {op} on bitmap {bitmap} failed: {ex.Message}");
                    }
                }
            }
            finally
            {
                if (sourceGraph != null)
                    await sourceGraph.DisposeAsync().ConfigureAwait(false);
            }
        }

        return 0;
    }

    private static async ValueTask ApplyAsync(BlockNode node, BlockNode source, string op, string? arg, string bitmap, long? granularity)
    {
        if (op == "add")
        {
            node.AddBitmap(bitmap, granularity, persistent: true, disabled: false, node.NodeName);
            return;
        }

        var target = node.FindBitmap(bitmap) ?? throw NotFound(bitmap);
        switch (op)
        {
            case "remove":
                await node.RemoveBitmapAsync(target).ConfigureAwait(false);
                break;
            case "clear":
                BlockNode.ClearBitmap(target);
                break;
            case "enable":
            case "disable":
                BlockNode.SetBitmapRecording(target, op == "enable");
                break;
            case "merge":
                BlockNode.CheckBitmap(target, BitmapUse.Modify);
                var from = source.FindBitmap(arg!) ?? throw NotFound(arg!);
                BlockNode.CheckMergeSource(target, from);
                target.Bits.Merge(from.Bits);
                break;
        }
    }

    private static BlockException NotFound(string name) => new(Errno.ENOENT, $"Dirty bitmap '{name}' not found");

    /// <summary>The operations in command-line order (getopt keeps them apart by kind; their order matters here).</summary>
    private static List<(string Op, string? Arg)> OrderedOps(string[] argv)
    {
        var ops = new List<(string, string?)>();
        for (int i = 0; i < argv.Length; i++)
        {
            string s = argv[i];
            if (s == "--")
                break;
            if (s.StartsWith("--merge=", StringComparison.Ordinal))
                ops.Add(("merge", s["--merge=".Length..]));
            else if (s == "--merge" && i + 1 < argv.Length)
                ops.Add(("merge", argv[++i]));
            else if (s.StartsWith("--", StringComparison.Ordinal) && Array.IndexOf(Ops, s[2..]) >= 0)
                ops.Add((s[2..], null));
            else if (s is "-b" or "-g" or "-f" or "-F" or "--object")
                i++;
        }

        return ops;
    }
}
