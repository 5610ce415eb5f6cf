using SharpBlock.Drivers;
using SharpBlock.Drivers.Creation;
using SharpBlock.Drivers.Format.Qcow2;
using SharpBlock.Graph;

namespace SharpBlock.Tests.Drivers.Qcow2;

/// <summary>Opens images through a real graph, as the daemon and the img commands do.</summary>
internal sealed class Qcow2TestImage : IAsyncDisposable
{
    private Qcow2TestImage(BlockGraph graph, BlockNode node)
    {
        Graph = graph;
        Node = node;
    }

    public BlockGraph Graph { get; }
    public BlockNode Node { get; }
    public Qcow2Node Qcow2 => (Qcow2Node)Node;

    public static async Task<Qcow2TestImage> OpenAsync(string path, bool readOnly = false, string format = "qcow2", bool discard = false)
    {
        var graph = new BlockGraph();
        try
        {
            var o = ImageFormats.ImageOptions(path, format, readOnly, "t0");
            if (discard)
                o.Discard = SharpBlock.Schema.BlockdevDiscardOptions.Unmap;
            var node = await graph.AddAsync(o);
            return new Qcow2TestImage(graph, node);
        }
        catch
        {
            await graph.DisposeAsync();
            throw;
        }
    }

    public static async Task<string> CreateAsync(string path, long size, int clusterSize = 65536, string compat = "1.1", int refcountBits = 16,
        string? backing = null, string? backingFormat = null, bool lazy = false, Preallocation prealloc = Preallocation.Off)
    {
        await Qcow2Creator.CreateAsync(path, new Qcow2CreateOptions
        {
            Size = size,
            ClusterSize = clusterSize,
            Compat = compat,
            RefcountBits = refcountBits,
            BackingFile = backing,
            BackingFormat = backingFormat,
            LazyRefcounts = lazy,
            Preallocation = prealloc,
        });
        return path;
    }

    public async ValueTask DisposeAsync() => await Graph.DisposeAsync();
}
