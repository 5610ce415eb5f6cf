using SharpBlock.Drivers;
using SharpBlock.Drivers.Creation;
using SharpBlock.Drivers.Format.Raw;
using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Images;

/// <summary>
/// One image file opened in a graph of its own: the front door for programs that want "open this disk" without
/// assembling nodes. The graph, the node and the device are all reachable for anything beyond that.
/// </summary>
/// <remarks>
/// Reads and writes may run concurrently from any thread (the node serialises what must be serialised); opening,
/// resizing and disposing may not overlap other calls. Dispose flushes nothing by itself: call
/// <see cref="FlushAsync"/> first when the writes must be durable.
/// </remarks>
public sealed class DiskImage : IAsyncDisposable
{
    private DiskImage(BlockGraph graph, BlockNode node, string path)
    {
        Graph = graph;
        Node = node;
        Path = path;
        Device = graph.CreateAnonymousDevice(node, "image");
    }

    /// <summary>The graph that owns the image's nodes (its own: nothing else shares it).</summary>
    public BlockGraph Graph { get; }

    /// <summary>The format node (qcow2, vmdk, raw...) over the file node.</summary>
    public BlockNode Node { get; }

    /// <summary>A device on <see cref="Node"/>: I/O statistics and the stream go through it.</summary>
    public BlockBackend Device { get; }

    public string Path { get; }

    /// <summary>The format's driver name, as qemu-img's info names it ("qcow2", "vmdk").</summary>
    public string Format => Node.DriverName;

    /// <summary>The virtual size in bytes (what a guest sees), not the file's size.</summary>
    public long Length => Node.Length;

    public bool ReadOnly => Node.ReadOnly;

    /// <summary>
    /// Opens an image. Without a format the first bytes decide, as QEMU probes; a probed raw image opened for
    /// writing refuses writes to its first sector that would make it look like another format (QEMU's guard
    /// against a guest turning its disk into a qcow2 pointing at host files).
    /// </summary>
    public static async ValueTask<DiskImage> OpenAsync(string path, string? format = null, bool readOnly = true,
        BlockDriverRegistry? drivers = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(path);
        var graph = new BlockGraph(drivers ?? BlockDriverRegistry.Default);
        try
        {
            string name = format ?? await ImageFormats.ProbeNameAsync(path, cancellationToken, graph.Drivers).ConfigureAwait(false);
            var options = ImageFormats.ImageOptions(path, name, readOnly, "image", graph.Drivers);
            var node = await graph.AddAsync(options, cancellationToken).ConfigureAwait(false);
            if (format == null && !readOnly && node is RawNode raw)
                raw.GuardProbedFormat(graph.Drivers);
            return new DiskImage(graph, node, path);
        }
        catch
        {
            await graph.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Creates an empty image (an existing file is replaced) and opens it for writing. <paramref name="options"/>
    /// are the format's creation options by qemu-img's -o names ("cluster_size", "compat", "subformat"...).
    /// </summary>
    public static async ValueTask<DiskImage> CreateAsync(string path, string format, long size,
        IReadOnlyDictionary<string, string>? options = null, BlockDriverRegistry? drivers = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(format);
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        var plan = PlanCreate(format, size, options, drivers);
        if (plan.Encrypted)
            throw new BlockException(Errno.EINVAL, "Encrypted images need a key secret; create them through the graph (BlockGraph.Secrets)");
        try
        {
            await plan.CreateAsync(path, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is (IOException and not BlockException) or UnauthorizedAccessException)
        {
            throw BlockException.ForPath("create", path, ex);
        }

        return await OpenAsync(path, format, readOnly: false, drivers, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The checked creation plan of a new image, not written yet (<see cref="ImageCreation.Describe"/> says what it will be).</summary>
    public static ImageCreation PlanCreate(string format, long size, IReadOnlyDictionary<string, string>? options = null, BlockDriverRegistry? drivers = null)
    {
        var driver = ImageFormats.ParseFormat(format, drivers);
        var f = ImageFormats.Find(driver, drivers) ?? throw new BlockException(Errno.EOPNOTSUPP, $"Cannot create images of format '{format}'");
        var values = new ImageOptionValues();
        foreach (var (key, value) in options ?? new Dictionary<string, string>())
            values.Set(key, value);
        values.Set("size", size.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var plan = f.PlanCreate(values);
        plan.Validate();
        return plan;
    }

    /// <summary>The image's guest view as a seekable Stream of <see cref="Length"/> bytes; use its async methods.</summary>
    public Stream AsStream() => Device.AsStream();

    public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        Device.ReadAsync(offset, buffer, cancellationToken);

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default) =>
        Device.WriteAsync(offset, data, cancellationToken: cancellationToken);

    /// <summary>Makes every completed write durable (format metadata included).</summary>
    public ValueTask FlushAsync(CancellationToken cancellationToken = default) => Device.FlushAsync(cancellationToken);

    /// <summary>Closes the image and its files; metadata a format keeps in memory is written back on close.</summary>
    public ValueTask DisposeAsync() => Graph.DisposeAsync();
}
