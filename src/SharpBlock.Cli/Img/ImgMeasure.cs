using System.Globalization;

namespace SharpBlock.Cli.Img;

/// <summary>
/// `img measure [--output=human|json] -O FMT [-o OPTIONS] (--size SIZE | [-f FMT] FILE)`: how large a new image
/// would be: "required" for the data the input actually holds, "fully allocated" if every cluster were written.
/// The qcow2 figures follow qemu-img's own arithmetic so the two tools print the same numbers.
/// </summary>
internal static class ImgMeasure
{
    public static async Task<int> RunAsync(string[] argv)
    {
        var a = ImgArgs.Parse(argv, "fOol", "qU", ["output", "size", "object"], ["force-share", "image-opts"]);
        bool json = a.Json();
        string outFmt = a.Get("-O") ?? "raw";
        var opts = ImgCreate.ParseOptions(a.GetAll("-o"));
        long virtualSize;
        long dataBytes;
        // qemu-img shows the bitmaps figure only when both the input and the output format can hold bitmaps.
        bool bitmaps = false;
        int clusterSize = opts.TryGetValue("cluster_size", out var cs) ? (int)ImgCreate.ParseSize(cs) : 65536;
        int refcountBits = opts.TryGetValue("refcount_bits", out var rb) ? ImgCreate.ParseInt(rb, "refcount_bits") : 16;
        if (a.Get("--size") is { } sizeText)
        {
            if (a.Positional.Count != 0)
                throw new ImgUsageException("--size N cannot be used together with a filename.");
            virtualSize = ImgCreate.ParseSize(sizeText);
            dataBytes = 0;
        }
        else
        {
            if (a.Positional.Count != 1)
                throw new ImgUsageException("Either --size N or one filename must be specified.");
            var (graph, source) = await ImgImage.OpenAsync(a, a.Positional[0], a.Get("-f"), readOnly: true).ConfigureAwait(false);
            await using (graph.ConfigureAwait(false))
            {
                if (a.Get("-l") is { } snapshot)
                    await ImgImage.LoadSnapshotAsync(source, snapshot).ConfigureAwait(false);
                virtualSize = source.Length;
                bitmaps = outFmt == "qcow2" && source.DriverName == "qcow2";
                dataBytes = outFmt == "qcow2" ? await AllocatedClusterBytesAsync(source, clusterSize).ConfigureAwait(false) : virtualSize;
            }
        }

        long required, full;
        switch (outFmt)
        {
            case "raw":
                required = full = virtualSize;
                break;
            case "qcow2":
                full = Qcow2PreallocSize(virtualSize, clusterSize, refcountBits);
                required = full - Align(virtualSize, clusterSize) + dataBytes;
                break;
            default:
                throw new ImgUsageException($"Unknown file format '{outFmt}'");
        }

        if (json)
        {
            Console.Out.WriteLine("{");
            if (bitmaps)
                Console.Out.WriteLine("    \"bitmaps\": 0,");
            Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"    \"required\": {required},"));
            Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"    \"fully-allocated\": {full}"));
            Console.Out.WriteLine("}");
        }
        else
        {
            Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"required size: {required}"));
            Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"fully allocated size: {full}"));
            if (bitmaps)
                Console.Out.WriteLine("bitmaps size: 0");
        }

        return 0;
    }

    private static long Align(long v, long a) => (v + a - 1) / a * a;

    private static long DivRoundUp(long v, long d) => (v + d - 1) / d;

    /// <summary>Data the conversion must store: every cluster holding data somewhere in the chain, partial heads counted.</summary>
    private static async Task<long> AllocatedClusterBytesAsync(SharpBlock.Graph.BlockNode source, int clusterSize)
    {
        long required = 0;
        long size = source.Length;
        for (long offset = 0; offset < size;)
        {
            var (e, len) = await ImgMap.StatusAboveAsync(source, offset, size - offset).ConfigureAwait(false);
            if (!e.Entry.Zero && e.Entry.Data)
            {
                long extended = Align(offset + len, clusterSize) - offset;
                required += (offset % clusterSize) + extended;
                len = extended;
            }

            offset += len;
        }

        return required;
    }

    /// <summary>File size of a fully preallocated qcow2 image: data, header, L2 tables, L1 table, refcount structures.</summary>
    internal static long Qcow2PreallocSize(long virtualSize, long clusterSize, int refcountBits)
    {
        long data = Align(virtualSize, clusterSize);
        long entriesPerCluster = clusterSize / 8;
        long meta = clusterSize;
        long l2Entries = Align(data / clusterSize, entriesPerCluster);
        meta += l2Entries * 8;
        long l1Entries = Align(l2Entries * 8 / clusterSize, entriesPerCluster);
        meta += l1Entries * 8;
        meta += RefcountMetadataSize((meta + data) / clusterSize, clusterSize, refcountBits);
        return meta + data;
    }

    /// <summary>Refcount table and blocks needed to count the given clusters plus themselves (a fixed point).</summary>
    private static long RefcountMetadataSize(long clusters, long clusterSize, int refcountBits)
    {
        long perTableCluster = clusterSize / 8;
        long perBlock = clusterSize * 8 / refcountBits;
        long table = 0, blocks = 0, n = 0, last;
        do
        {
            last = n;
            blocks = DivRoundUp(clusters + table + blocks, perBlock);
            table = DivRoundUp(blocks, perTableCluster);
            n = clusters + blocks + table;
        }
        while (n != last);
        return (blocks + table) * clusterSize;
    }
}
