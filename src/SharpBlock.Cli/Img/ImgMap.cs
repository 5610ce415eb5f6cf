using System.Globalization;
using System.Text;
using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Cli.Img;

/// <summary>
/// `img map [-f FMT] [--output=human|json] [--start-offset=OFFSET] [--max-length=LEN] FILE`: the allocation map
/// merged as qemu-img merges it.
/// </summary>
internal static class ImgMap
{
    /// <summary>One map extent: the QAPI entry plus 'present' and the file it maps into.</summary>
    internal sealed record Extent(BlockDeviceMapEntry Entry, bool Present, string? File);

    public static async Task<int> RunAsync(string[] argv)
    {
        var a = ImgArgs.Parse(argv, "fl", "hU", ["output", "start-offset", "max-length", "object"], ["force-share", "image-opts"]);
        if (a.Positional.Count != 1)
            throw ImgUsageException.Syntax("Expecting one image file name");
        bool json = a.Json();
        long start = Offset(a.Get("--start-offset"), "Invalid start offset specified") ?? 0;
        long? maxLength = Offset(a.Get("--max-length"), "Invalid max length specified");
        var (graph, node) = await ImgImage.OpenAsync(a, a.Positional[0], a.Get("-f"), readOnly: true).ConfigureAwait(false);
        await using (graph.ConfigureAwait(false))
        {
            var extents = await MapAsync(node, start, maxLength).ConfigureAwait(false);
            if (json)
            {
                // qemu-img prints one empty entry for an empty range (a zero-size image, a start past the end).
                if (extents.Count == 0)
                    extents.Add(new Extent(new BlockDeviceMapEntry { Start = start, Length = 0, Depth = 0, Zero = false, Data = false }, false, null));
                Console.Out.Write(Json(extents));
                return 0;
            }

            // Like qemu-img, the rows before a compressed extent are printed, then the error.
            string text = Human(extents, out string? error);
            Console.Out.Write(text);
            if (error == null)
                return 0;
            return ImgCommand.Fail(error);
        }
    }

    /// <summary>The merged extents of [start, start + maxLength), cut at the image's end.</summary>
    public static async Task<List<Extent>> MapAsync(BlockNode top, long start = 0, long? maxLength = null)
    {
        var list = new List<Extent>();
        long size = top.Length;
        if (maxLength is { } max && max < size - start)
            size = start + max;
        long offset = start;
        while (offset < size)
        {
            var (e, len) = await StatusAboveAsync(top, offset, size - offset).ConfigureAwait(false);
            offset += len;
            if (list.Count > 0 && CanMerge(list[^1], e))
            {
                var last = list[^1];
                last.Entry.Length += e.Entry.Length;
                continue;
            }

            list.Add(e);
        }

        return list;
    }

    private static long? Offset(string? text, string invalid)
    {
        if (text == null)
            return null;
        try
        {
            return ImgArgs.ParseSize(text);
        }
        catch (ImgUsageException)
        {
            throw new ImgUsageException(invalid + ". You may use k, M, G, T, P or E suffixes for kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
        }
    }

    private static bool CanMerge(Extent a, Extent b) =>
        a.Entry.Depth == b.Entry.Depth && a.Entry.Zero == b.Entry.Zero && a.Entry.Data == b.Entry.Data && a.Present == b.Present
        && a.File == b.File
        && (a.Entry.Offset == null) == (b.Entry.Offset == null)
        && (a.Entry.Offset == null || a.Entry.Offset + a.Entry.Length == b.Entry.Offset);

    /// <summary>Walks down the backing chain until a layer decides the content of the range.</summary>
    internal static async Task<(Extent, long)> StatusAboveAsync(BlockNode top, long offset, long length)
    {
        int depth = 0;
        var node = top;
        while (true)
        {
            if (offset >= node.Length)
            {
                // Past the end of a shorter backing image: reads as zeros, decided by the layer above.
                var z = new BlockDeviceMapEntry { Start = offset, Length = length, Depth = Math.Max(0, depth - 1), Zero = true, Data = false };
                return (new Extent(z, false, null), length);
            }

            var st = await node.GetBlockStatusAsync(offset, length).ConfigureAwait(false);
            length = st.Length;
            if (st.IsAllocated || node.Backing == null)
            {
                var entry = new BlockDeviceMapEntry
                {
                    Start = offset,
                    Length = st.Length,
                    Depth = depth,
                    Zero = st.IsZero,
                    Data = st.IsData,
                };
                string? file = null;
                if ((st.Flags & Io.BlockStatusFlags.OffsetValid) != 0)
                {
                    entry.Offset = st.Offset;
                    file = st.File?.Filename;
                }

                return (new Extent(entry, st.IsAllocated, file), st.Length);
            }

            node = node.Backing;
            depth++;
        }
    }

    public static string Json(List<Extent> extents)
    {
        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder("[");
        for (int i = 0; i < extents.Count; i++)
        {
            var e = extents[i].Entry;
            if (i > 0)
                sb.Append(",\n");
            sb.Append(ci, $"{{ \"start\": {e.Start}, \"length\": {e.Length}, \"depth\": {e.Depth}, \"present\": {B(extents[i].Present)}, \"zero\": {B(e.Zero)}, \"data\": {B(e.Data)}");
            if (e.Offset is { } o)
                sb.Append(ci, $", \"offset\": {o}");
            sb.Append('}');
        }

        sb.Append("]\n");
        return sb.ToString();
    }

    private static string B(bool b) => b ? "true" : "false";

    public static string Human(List<Extent> extents, out string? error)
    {
        error = null;
        var sb = new StringBuilder();
        sb.Append(string.Format(CultureInfo.InvariantCulture, "{0,-16}{1,-16}{2,-16}{3}\n", "Offset", "Length", "Mapped to", "File"));
        foreach (var x in extents)
        {
            var e = x.Entry;
            if (!e.Data || e.Zero)
                continue;
            if (e.Offset == null)
            {
                error = "File contains external, encrypted or compressed clusters.";
                break;
            }

            sb.Append(string.Format(CultureInfo.InvariantCulture, "{0,-16}{1,-16}{2,-16}{3}\n", Hex(e.Start), Hex(e.Length), Hex(e.Offset.Value), x.File));
        }

        return sb.ToString();
    }

    private static string Hex(long v) => v == 0 ? "0" : "0x" + v.ToString("x", CultureInfo.InvariantCulture);
}
