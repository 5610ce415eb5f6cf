using System.Buffers.Binary;
using SharpBlock.Drivers.Protocol.File;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Vmdk;

/// <summary>
/// A VMDK image: a descriptor (embedded in a sparse extent or a text file of its own) and the extents it lists,
/// each a child file node. Grain tables are cached and written back at flush, after the data they point to;
/// one metadata lock guards lookups and allocation, data I/O to allocated grains runs outside it.
/// </summary>
public sealed partial class VmdkNode : BlockNode
{
    private readonly BlockNode _file;
    private readonly List<VmdkExtent> _extents;
    private readonly SemaphoreSlim _meta = new(1, 1);
    private readonly long _length;

    /// <summary>Where the descriptor sits in <see cref="_file"/> and how many bytes it may take (an embedded one has a fixed area).</summary>
    private readonly long _descriptorOffset;
    private readonly int _descriptorArea;
    private readonly bool _embeddedDescriptor;
    private VmdkDescriptor _descriptor;
    private bool _cidUpdated;
    private bool _cidChecked;

    private VmdkNode(BlockNode file, NodeSettings settings, List<VmdkExtent> extents, VmdkDescriptor descriptor, string createType,
        long descriptorOffset, int descriptorArea, bool embedded)
        : base(settings)
    {
        _file = file;
        _extents = extents;
        _descriptor = descriptor;
        CreateType = createType;
        _descriptorOffset = descriptorOffset;
        _descriptorArea = descriptorArea;
        _embeddedDescriptor = embedded;
        _length = extents.Count > 0 ? extents[^1].End : 0;
        AttachChild(file, ChildRole.File, "file");
        for (int i = 0; i < extents.Count; i++)
        {
            if (!ReferenceEquals(extents[i].File, file) && !IsChild(extents[i].File))
                AttachChild(extents[i].File, ChildRole.File, $"extents.{i}");
        }

        // An extent without a descriptor has nowhere to keep a new CID.
        _cidUpdated = embedded && descriptorArea == 0;
        Cid = descriptor.Cid;
        ParentCid = descriptor.ParentCid;
        _backingName = descriptor.ParentFileNameHint;
    }

    private bool IsChild(BlockNode node)
    {
        foreach (var c in Children)
        {
            if (ReferenceEquals(c.Node, node))
                return true;
        }

        return false;
    }

    private string? _backingName;

    public override string DriverName => "vmdk";

    public override long Length => _length;

    /// <summary>The subformat: the descriptor's createType, or monolithicSparse/streamOptimized for a sparse file.</summary>
    public string CreateType { get; }

    /// <summary>This image's content identifier, changed on the first write after each open.</summary>
    public uint Cid { get; private set; }

    /// <summary>The CID the parent had when this image was made; reads that fall through need it to still match.</summary>
    public uint ParentCid { get; private set; }

    public override string? BackingFileName => _backingName;

    /// <summary>A VMDK parent is always VMDK (the descriptor has no format field).</summary>
    public override string? BackingFormat => _backingName != null ? "vmdk" : null;

    internal IReadOnlyList<VmdkExtent> Extents => _extents;

    internal void AttachBacking(BlockNode backing) => AttachChild(backing, ChildRole.Backing, "backing");

    /// <summary>Opens an image from its file through the graph, which opens the extent files a descriptor names.</summary>
    internal static ValueTask<VmdkNode> OpenAsync(BlockOpenContext ctx, BlockNode file, CancellationToken ct) =>
        OpenAsync(file, ctx.Settings, (path, c) => ctx.OpenChildAsync(new BlockdevRef
        {
            Definition = HostFileProbe.Options(path),
        }, c), ct);

    /// <summary>
    /// Opens a single-file image (monolithicSparse, streamOptimized) from any node, such as a memory node; a
    /// descriptor that names extent files needs the graph (<see cref="OpenAsync(BlockOpenContext, BlockNode, CancellationToken)"/>).
    /// </summary>
    public static ValueTask<VmdkNode> OpenAsync(BlockNode file, NodeSettings settings, CancellationToken cancellationToken = default) =>
        OpenAsync(file, settings, null, cancellationToken);

    /// <summary>Opens an image from its file: a sparse extent with an embedded descriptor, or a text descriptor naming extent files.</summary>
    private static async ValueTask<VmdkNode> OpenAsync(BlockNode file, NodeSettings settings, Func<string, CancellationToken, ValueTask<BlockNode>>? openExtent,
        CancellationToken ct)
    {
        // The extents hold metadata: a second writer would corrupt what we cache.
        file.RefuseOtherWriters();
        string name = file.Filename;
        bool writable = !settings.ReadOnly;
        if (file.Length < 4)
            throw new ImageCorruptException(name, "header", 0, "File is too small, not a valid image");
        byte[] magic = new byte[4];
        await file.ReadAsync(0, magic, ct).ConfigureAwait(false);
        uint m = BinaryPrimitives.ReadUInt32LittleEndian(magic);
        var opened = new List<BlockNode>();
        try
        {
            if (m is VmdkLayout.Magic or VmdkLayout.Vmdk3Magic)
            {
                var extent = await VmdkSparseExtent.OpenAsync(file, "", 0, writable, ct).ConfigureAwait(false);
                var h = extent.Header;
                long descAt = (long)Math.Min(h.DescOffset, (ulong)(file.Length / VmdkLayout.SectorSize)) * VmdkLayout.SectorSize;
                int area = EmbeddedArea(h);
                var desc = await ReadDescriptorAsync(file, descAt, area, ct).ConfigureAwait(false);
                if (h.Capacity == 0)
                {
                    // A sparse header without capacity only points at a descriptor, which lists the real extents.
                    return await FromDescriptorAsync(file, settings, openExtent, desc, descAt, area, embedded: true, opened, ct).ConfigureAwait(false);
                }

                string createType = extent.Compressed ? "streamOptimized" : "monolithicSparse";
                return new VmdkNode(file, settings, [extent], desc, createType, descAt, area, embedded: true);
            }

            var text = await ReadDescriptorAsync(file, 0, (int)Math.Min(file.Length, VmdkLayout.MaxDescriptorBytes), ct).ConfigureAwait(false);
            return await FromDescriptorAsync(file, settings, openExtent, text, 0, 0, embedded: false, opened, ct).ConfigureAwait(false);
        }
        catch
        {
            foreach (var n in opened)
                await n.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// How much of an embedded descriptor we read and may rewrite: what the header gives it, at most the 20 sectors
    /// QEMU reads and rewrites, and never into the tables or grains that follow it, so a lying desc_size cannot
    /// make a CID update overwrite metadata. 0 when the extent has no descriptor (its CID is then never rewritten).
    /// </summary>
    private static int EmbeddedArea(VmdkSparseHeader h)
    {
        if (h.DescOffset == 0 || h.DescSize == 0)
            return 0;
        ulong end = h.DescOffset + Math.Min(h.DescSize, (ulong)(VmdkLayout.DescriptorAreaBytes / VmdkLayout.SectorSize));
        foreach (ulong next in (ReadOnlySpan<ulong>)[h.RgdOffset, h.GdOffset, h.GrainOffset])
        {
            if (next > h.DescOffset && next < end)
                end = next;
        }

        return (int)(end - h.DescOffset) * VmdkLayout.SectorSize;
    }

    private static async ValueTask<VmdkDescriptor> ReadDescriptorAsync(BlockNode file, long offset, int bytes, CancellationToken ct)
    {
        bytes = (int)Math.Max(0, Math.Min(bytes, file.Length - offset));
        byte[] buf = new byte[bytes];
        if (bytes > 0)
            await file.ReadAsync(offset, buf, ct).ConfigureAwait(false);
        return VmdkDescriptor.Parse(buf);
    }

    private static readonly string[] DescriptorTypes = ["monolithicFlat", "vmfs", "vmfsSparse", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat"];

    private static async ValueTask<VmdkNode> FromDescriptorAsync(BlockNode file, NodeSettings settings, Func<string, CancellationToken, ValueTask<BlockNode>>? openExtent,
        VmdkDescriptor desc, long descAt, int area, bool embedded, List<BlockNode> opened, CancellationToken ct)
    {
        string name = file.Filename;
        string createType = desc.CreateType ?? throw new BlockException(Errno.EINVAL, "invalid VMDK image descriptor");
        if (Array.IndexOf(DescriptorTypes, createType) < 0)
            throw new BlockException(Errno.EOPNOTSUPP, $"Unsupported image type '{createType}'");
        var lines = desc.Extents();
        if (lines.Count == 0)
            throw new ImageCorruptException(name, "descriptor", descAt, "no RW extent of a supported type (FLAT, SPARSE, VMFS, VMFSSPARSE) is listed");
        var extents = new List<VmdkExtent>(lines.Count);
        long start = 0;
        bool writable = !settings.ReadOnly;
        if (openExtent == null)
            throw new BlockException(Errno.EOPNOTSUPP, $"'{name}' names extent files, which only an image opened through a block graph can open");
        foreach (var line in lines)
        {
            string path = BackingFiles.Resolve(name, line.FileName);
            var child = await openExtent(path, ct).ConfigureAwait(false);
            opened.Add(child);
            child.RefuseOtherWriters();
            VmdkExtent extent;
            if (line.Type is "FLAT" or "VMFS")
            {
                if (line.Sectors > (long.MaxValue / 2 / VmdkLayout.SectorSize) - (start / VmdkLayout.SectorSize)
                    || line.Offset > long.MaxValue / 2 / VmdkLayout.SectorSize)
                    throw new ImageCorruptException(name, "extent line", descAt, $"extent '{line.FileName}' is too large");
                extent = new VmdkFlatExtent(child, line.Type, start, line.Sectors * VmdkLayout.SectorSize, line.Offset * VmdkLayout.SectorSize);
            }
            else
            {
                extent = await VmdkSparseExtent.OpenAsync(child, line.Type, start, writable, ct).ConfigureAwait(false);
                if (extent.Length > long.MaxValue / 2 - start)
                    throw new ImageCorruptException(name, "extent line", descAt, $"extent '{line.FileName}' is too large");
            }

            extents.Add(extent);
            start = extent.End;
        }

        return new VmdkNode(file, settings, extents, desc, createType, descAt, area, embedded);
    }

    /// <summary>The extent holding a guest offset (extents are in guest order and cover the disk without gaps).</summary>
    private VmdkExtent Find(long offset)
    {
        int lo = 0, hi = _extents.Count - 1;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) / 2;
            if (_extents[mid].Start <= offset)
                lo = mid;
            else
                hi = mid - 1;
        }

        return _extents[lo];
    }

    private async ValueTask<VmdkMapping> MapAsync(VmdkExtent extent, long offset, CancellationToken ct)
    {
        if (extent is VmdkFlatExtent)
            return await extent.MapAsync(offset - extent.Start, ct).ConfigureAwait(false);
        await _meta.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            return await extent.MapAsync(offset - extent.Start, ct).ConfigureAwait(false);
        }
        finally
        {
            _meta.Release();
        }
    }

    protected override async ValueTask FlushCoreAsync(CancellationToken cancellationToken)
    {
        foreach (var e in _extents)
            e.Debug.Raise(BlkdebugEvent.FlushToOs);
        await _meta.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await WriteBackLockedAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _meta.Release();
        }
    }

    private async ValueTask WriteBackLockedAsync(CancellationToken ct)
    {
        foreach (var e in _extents)
        {
            if (e is VmdkSparseExtent s && s.Dirty)
                await s.WriteBackAsync(ct).ConfigureAwait(false);
        }

        foreach (var c in Children)
        {
            if (c.Role == ChildRole.File)
                await c.Node.FlushAsync(ct).ConfigureAwait(false);
        }
    }

    protected override async ValueTask CloseCoreAsync()
    {
        try
        {
            if (!ReadOnly)
            {
                // A stream we appended grains to is ended as stream readers expect (markers, footer, end of stream).
                foreach (var e in _extents)
                {
                    if (e is VmdkSparseExtent s)
                        await s.AppendStreamEndAsync(CancellationToken.None).ConfigureAwait(false);
                }
            }
        }
        catch (BlockException)
        {
            // The grains and tables are already durable; a stream without its tail still reads through the header.
        }
        finally
        {
            _meta.Dispose();
        }
    }

    public override async ValueTask<long> GetAllocatedFileSizeAsync(CancellationToken cancellationToken = default)
    {
        long total = 0;
        foreach (var c in Children)
        {
            if (c.Role != ChildRole.File)
                continue;
            long n = await c.Node.GetAllocatedFileSizeAsync(cancellationToken).ConfigureAwait(false);
            if (n < 0)
                return -1;
            total += n;
        }

        return total;
    }
}
