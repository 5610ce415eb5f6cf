using System.Buffers.Binary;
using System.Globalization;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Io;

namespace SharpBlock.Drivers.Format.Bochs;

/// <summary>
/// A Bochs growing redolog, read-only: a catalog maps each extent to a slot in the data area, and each slot
/// holds a bitmap of the sectors written then the sectors themselves. A sector is data only when its extent
/// is in the catalog and its bit is set; everything else reads as zeros.
/// </summary>
public sealed class BochsNode : BlockNode
{
    private readonly BlockNode _file;
    private readonly uint[] _catalog;
    private readonly long _length;
    private readonly long _extentSize;
    private readonly long _dataOffset;
    private readonly long _bitmapBlocks;
    private readonly long _extentBlocks;

    private BochsNode(BlockNode file, NodeSettings settings, BochsHeader h, uint[] catalog)
        : base(settings)
    {
        _file = file;
        _catalog = catalog;
        _length = (long)(h.Disk / BochsLayout.SectorSize) * BochsLayout.SectorSize;
        _extentSize = h.Extent;
        _dataOffset = h.HeaderSize + ((long)h.Catalog * 4);
        // Both counts round up to whole sectors (a zero bitmap size wraps in QEMU's arithmetic; here it is refused).
        _bitmapBlocks = 1 + (((long)h.Bitmap - 1) / BochsLayout.SectorSize);
        _extentBlocks = 1 + (((long)h.Extent - 1) / BochsLayout.SectorSize);
        AttachChild(file, ChildRole.File, "file");
    }

    public override string DriverName => "bochs";

    public override long Length => _length;

    /// <summary>QEMU's bochs driver has no get_info: qemu-img info shows no dirty flag.</summary>
    public override bool HasDriverInfo => false;

    /// <summary>Opens an image from its file node, refusing (in QEMU's words and order) what QEMU refuses.</summary>
    public static async ValueTask<BochsNode> OpenAsync(BlockNode file, NodeSettings settings, CancellationToken cancellationToken = default)
    {
        if (!settings.ReadOnly)
            throw new BlockException(Errno.EACCES, "Image is read-only");
        long fileLength = file.Length;
        if (fileLength < BochsHeader.Size)
            throw new BlockException(Errno.EINVAL, "Image not in Bochs format");
        byte[] head = new byte[BochsHeader.Size];
        await file.ReadAsync(0, head, cancellationToken).ConfigureAwait(false);
        if (!BochsHeader.IsGrowingRedolog(head))
            throw new BlockException(Errno.EINVAL, "Image not in Bochs format");
        var h = BochsHeader.Read(head);
        if (h.Catalog > BochsLayout.MaxCatalog)
            throw new BlockException(Errno.EFBIG, "Catalog size is too large");
        // Beyond QEMU: the catalog must lie in the file, and the bitmap must have a size.
        long catalogEnd = h.HeaderSize + ((long)h.Catalog * 4);
        if (catalogEnd > fileLength)
            throw new BlockException(Errno.EINVAL, string.Create(CultureInfo.InvariantCulture, $"Invalid image: the catalog (header {h.HeaderSize}, catalog {h.Catalog} entries) lies beyond the end of the file ({fileLength} bytes)"));
        if (h.Bitmap == 0)
            throw new BlockException(Errno.EINVAL, "Invalid image: the bitmap size is zero");
        if (h.Extent < BochsLayout.SectorSize)
            throw new BlockException(Errno.EINVAL, "Extent size must be at least 512");
        if ((h.Extent & (h.Extent - 1)) != 0)
            throw new BlockException(Errno.EINVAL, string.Create(CultureInfo.InvariantCulture, $"Extent size {h.Extent} is not a power of two"));
        if (h.Extent > BochsLayout.MaxExtent)
            throw new BlockException(Errno.EINVAL, string.Create(CultureInfo.InvariantCulture, $"Extent size {h.Extent} is too large"));
        ulong sectors = h.Disk / BochsLayout.SectorSize;
        ulong perExtent = h.Extent / BochsLayout.SectorSize;
        if (h.Catalog < (sectors + perExtent - 1) / perExtent)
            throw new BlockException(Errno.EINVAL, "Catalog size is too small for this disk size");

        uint[] catalog = new uint[h.Catalog];
        if (h.Catalog > 0)
        {
            byte[] raw = new byte[h.Catalog * 4L];
            await file.ReadAsync(h.HeaderSize, raw, cancellationToken).ConfigureAwait(false);
            for (int i = 0; i < catalog.Length; i++)
                catalog[i] = BinaryPrimitives.ReadUInt32LittleEndian(raw.AsSpan(i * 4));
        }

        return new BochsNode(file, settings, h, catalog);
    }

    protected override async ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        byte[] bitmap = new byte[(int)((_extentSize / BochsLayout.SectorSize + 7) / 8)];
        while (buffer.Length > 0)
        {
            long extent = offset / _extentSize;
            long inExtent = offset % _extentSize;
            int n = (int)Math.Min(buffer.Length, _extentSize - inExtent);
            uint entry = _catalog[extent];
            if (entry == BochsLayout.Unallocated)
                buffer.Span[..n].Clear();
            else
                await ReadExtentAsync(extent, entry, inExtent, buffer[..n], bitmap, cancellationToken).ConfigureAwait(false);
            offset += n;
            buffer = buffer[n..];
        }
    }

    /// <summary>Reads sectors of one allocated extent: runs of set bits from the file, clear bits as zeros.</summary>
    private async ValueTask ReadExtentAsync(long extent, uint entry, long inExtent, Memory<byte> buffer, byte[] bitmap, CancellationToken cancellationToken)
    {
        Int128 slot = (Int128)_dataOffset + ((Int128)BochsLayout.SectorSize * entry * (_extentBlocks + _bitmapBlocks));
        if (slot > long.MaxValue / 2)
            throw new ImageCorruptException(_file.Filename, "catalog entry", BochsHeader.Size + (extent * 4), $"extent {extent} points at slot {entry}, past any possible file offset");
        long bitmapAt = (long)slot;
        long end = inExtent + buffer.Length;
        long first = inExtent / BochsLayout.SectorSize;
        long last = (end - 1) / BochsLayout.SectorSize;
        int bytes = (int)((last / 8) - (first / 8) + 1);
        await ReadFileAsync(bitmapAt + (first / 8), bitmap.AsMemory(0, bytes), cancellationToken).ConfigureAwait(false);
        bool Set(long s) => ((bitmap[(int)((s / 8) - (first / 8))] >> (int)(s % 8)) & 1) != 0;
        long dataAt = bitmapAt + (_bitmapBlocks * BochsLayout.SectorSize);
        for (long s = first; s <= last;)
        {
            bool set = Set(s);
            long run = s + 1;
            while (run <= last && Set(run) == set)
                run++;
            // The byte range of sectors s..run-1 within this request.
            long from = Math.Max(inExtent, s * BochsLayout.SectorSize), to = Math.Min(end, run * BochsLayout.SectorSize);
            var part = buffer.Slice((int)(from - inExtent), (int)(to - from));
            if (set)
                await ReadFileAsync(dataAt + from, part, cancellationToken).ConfigureAwait(false);
            else
                part.Span.Clear();
            s = run;
        }
    }

    /// <summary>Reads the file, with zeros past its end (as QEMU's file layer reads them).</summary>
    private async ValueTask ReadFileAsync(long at, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        long have = Math.Clamp(_file.Length - at, 0, buffer.Length);
        if (have > 0)
            await _file.ReadAsync(at, buffer[..(int)have], cancellationToken).ConfigureAwait(false);
        buffer.Span[(int)have..].Clear();
    }

    protected override ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags, CancellationToken cancellationToken) =>
        throw new BlockException(Errno.EACCES, "Image is read-only");

    protected override ValueTask WriteZeroesCoreAsync(long offset, long length, RequestFlags flags, CancellationToken cancellationToken) =>
        throw new BlockException(Errno.EACCES, "Image is read-only");

    protected override ValueTask FlushCoreAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    protected override ValueTask TruncateCoreAsync(long size, CancellationToken cancellationToken) =>
        throw new BlockException(Errno.EOPNOTSUPP, "Image format driver does not support resize");
}
