using System.Buffers.Binary;
using System.IO.Compression;
using SharpBlock.Drivers;
using SharpBlock.Drivers.Format.Vmdk;
using SharpBlock.Graph;

namespace SharpBlock.Tests.Drivers.Vmdk;

/// <summary>Opens VMDK images through a real graph, and builds the images qemu-img cannot make (VMware's streams).</summary>
internal sealed class VmdkTestImage : IAsyncDisposable
{
    private VmdkTestImage(BlockGraph graph, BlockNode node)
    {
        Graph = graph;
        Node = node;
    }

    public BlockGraph Graph { get; }
    public BlockNode Node { get; }
    public VmdkNode Vmdk => (VmdkNode)Node;

    public static async Task<VmdkTestImage> OpenAsync(string path, bool readOnly = false)
    {
        var graph = new BlockGraph();
        try
        {
            return new VmdkTestImage(graph, await graph.AddAsync(ImageFormats.ImageOptions(path, "vmdk", readOnly, "t0")));
        }
        catch
        {
            await graph.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync() => await Graph.DisposeAsync();

    /// <summary>
    /// A stream as VMware writes it: the header says "GD at end", grains behind markers, then a grain table
    /// marker and table, a grain directory marker and directory, the footer (marker, header copy) and the
    /// end-of-stream marker. <paramref name="grains"/> maps grain numbers to 64 KiB of content.
    /// </summary>
    public static byte[] VmwareStream(long capacitySectors, IReadOnlyDictionary<int, byte[]> grains)
    {
        const int Sector = 512;
        const long Gran = 128;
        var ms = new MemoryStream();
        var h = new VmdkSparseHeader
        {
            Magic = VmdkLayout.Magic,
            Version = 3,
            Flags = VmdkLayout.FlagNewlineDetect | VmdkLayout.FlagCompressed | VmdkLayout.FlagMarkers,
            Capacity = (ulong)capacitySectors,
            Granularity = Gran,
            DescOffset = 1,
            DescSize = 20,
            GtesPerGt = 512,
            RgdOffset = 0,
            GdOffset = VmdkLayout.GdAtEnd,
            GrainOffset = 128,
            CheckBytes = VmdkLayout.CheckBytes,
            CompressAlgorithm = VmdkLayout.CompressionDeflate,
        };
        byte[] sector = new byte[Sector];
        h.Write(sector);
        ms.Write(sector);
        byte[] desc = System.Text.Encoding.ASCII.GetBytes(VmdkDescriptor.Create(0x1234abcd, VmdkLayout.NoParentCid, "streamOptimized", null,
            [$"RW {capacitySectors} SPARSE \"x.vmdk\""], "4", capacitySectors * Sector, "ide", "2147483647"));
        byte[] area = new byte[20 * Sector];
        desc.CopyTo(area, 0);
        ms.Write(area);
        ms.SetLength(128 * Sector);
        ms.Position = ms.Length;
        long grainCount = (capacitySectors + Gran - 1) / Gran;
        int gtCount = (int)((grainCount + 511) / 512);
        var gts = new uint[gtCount * 512];
        foreach (var (g, data) in grains.OrderBy(p => p.Key))
        {
            gts[g] = (uint)(ms.Position / Sector);
            var z = new MemoryStream();
            using (var zs = new ZLibStream(z, CompressionLevel.Fastest, leaveOpen: true))
                zs.Write(data);
            byte[] marker = new byte[12];
            BinaryPrimitives.WriteUInt64LittleEndian(marker, (ulong)(g * Gran));
            BinaryPrimitives.WriteUInt32LittleEndian(marker.AsSpan(8), (uint)z.Length);
            ms.Write(marker);
            ms.Write(z.ToArray());
            Pad(ms);
        }

        var gd = new uint[gtCount];
        for (int t = 0; t < gtCount; t++)
        {
            WriteMarker(ms, 4, VmdkLayout.MarkerGrainTable);
            gd[t] = (uint)(ms.Position / Sector);
            byte[] table = new byte[2048];
            for (int i = 0; i < 512; i++)
                BinaryPrimitives.WriteUInt32LittleEndian(table.AsSpan(i * 4), gts[(t * 512) + i]);
            ms.Write(table);
        }

        long gdSectors = ((gtCount * 4) + Sector - 1) / Sector;
        WriteMarker(ms, (ulong)gdSectors, VmdkLayout.MarkerGrainDirectory);
        long gdAt = ms.Position / Sector;
        byte[] dir = new byte[gdSectors * Sector];
        for (int t = 0; t < gtCount; t++)
            BinaryPrimitives.WriteUInt32LittleEndian(dir.AsSpan(t * 4), gd[t]);
        ms.Write(dir);
        WriteMarker(ms, 1, VmdkLayout.MarkerFooter);
        Array.Clear(sector);
        (h with { GdOffset = (ulong)gdAt }).Write(sector);
        ms.Write(sector);
        WriteMarker(ms, 0, VmdkLayout.MarkerEndOfStream);
        return ms.ToArray();
    }

    private static void Pad(MemoryStream ms)
    {
        long end = (ms.Position + 511) / 512 * 512;
        ms.SetLength(end);
        ms.Position = end;
    }

    private static void WriteMarker(MemoryStream ms, ulong value, uint type)
    {
        byte[] s = new byte[512];
        new VmdkMarker(value, 0, type).WriteMetadata(s);
        ms.Write(s);
    }
}
