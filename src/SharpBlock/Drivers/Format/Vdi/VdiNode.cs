using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Io;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Vdi;

/// <summary>
/// A VirtualBox disk image: a header, a block map of 32-bit block numbers, and 1 MiB data blocks appended
/// in allocation order. Allocating writes put the whole block at the end of the data area; the block map
/// and the header's blocks_allocated reach the disk at the next flush, after the data (see FlushCoreAsync).
/// </summary>
public sealed partial class VdiNode : BlockNode
{
    private readonly BlockNode _file;
    private readonly byte[] _headerSector;
    private readonly byte[] _bmap;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private VdiHeader _header;
    private long _length;

    // The range of block-map sectors changed since the last flush (first inclusive, last exclusive), and whether the header's count changed.
    private long _dirtyFirst = long.MaxValue;
    private long _dirtyEnd;
    private bool _headerDirty;

    private VdiNode(BlockNode file, NodeSettings settings, byte[] headerSector, VdiHeader header, byte[] bmap)
        : base(settings)
    {
        _file = file;
        _headerSector = headerSector;
        _header = header;
        _bmap = bmap;
        // QEMU rounds a disk size that is not whole sectors up (VBoxManage convertfromraw makes such images).
        _length = (long)((header.DiskSize + VdiLayout.SectorSize - 1) & ~(ulong)(VdiLayout.SectorSize - 1));
        AttachChild(file, ChildRole.File, "file");
    }

    public override string DriverName => "vdi";

    public override long Length => _length;

    internal VdiHeader Header => _header;

    internal uint BlocksInImage => _header.BlocksInImage;

    private string FileName => _file.Filename;

    public bool IsStatic => _header.ImageType == VdiLayout.TypeStatic;

    /// <summary>Opens an image from its file node, refusing (in QEMU's words and order) what QEMU refuses.</summary>
    public static async ValueTask<VdiNode> OpenAsync(BlockNode file, NodeSettings settings, CancellationToken cancellationToken = default)
    {
        file.RefuseOtherWriters();
        long fileLength = file.Length;
        if (fileLength < VdiHeader.Size)
            throw new BlockException(Errno.EINVAL, $"Image not in VDI format (file of {fileLength} bytes is shorter than the header)");
        byte[] head = new byte[VdiHeader.Size];
        await file.ReadAsync(0, head, cancellationToken).ConfigureAwait(false);
        var h = VdiHeader.Read(head);
        Validate(h);

        // Beyond QEMU: a block map that does not fit in the file is refused instead of read as zeros (a zero
        // entry would name block 0), and this bounds what a hostile header can make us allocate.
        long bmapBytes = (long)h.BlocksInImage * 4;
        long bmapAlloc = (bmapBytes + VdiLayout.SectorSize - 1) & ~(long)(VdiLayout.SectorSize - 1);
        if (h.OffsetBmap < VdiHeader.Size)
            throw new BlockException(Errno.EINVAL, $"unsupported VDI image (block map offset 0x{h.OffsetBmap:x} overlaps the header)");
        if ((long)h.OffsetBmap + bmapBytes > fileLength)
            throw new BlockException(Errno.EINVAL, $"VDI block map (offset_bmap 0x{h.OffsetBmap:x}, {h.BlocksInImage} entries) lies beyond the end of the file ({fileLength} bytes)");
        if (h.BlocksInImage > 0 && h.OffsetData < (long)h.OffsetBmap + bmapBytes && h.OffsetData + ((long)h.BlocksInImage * VdiLayout.BlockSize) > h.OffsetBmap)
            throw new BlockException(Errno.EINVAL, $"unsupported VDI image (data offset 0x{h.OffsetData:x} overlaps the block map)");
        byte[] bmap = new byte[bmapAlloc];
        if (bmapBytes > 0)
            await file.ReadAsync(h.OffsetBmap, bmap.AsMemory(0, (int)bmapBytes), cancellationToken).ConfigureAwait(false);
        // The tail of the last map sector is never an entry; keep it as unallocated entries so it is written back clean.
        bmap.AsSpan((int)bmapBytes).Fill(0xff);
        return new VdiNode(file, settings, head, h, bmap);
    }

    /// <summary>QEMU 7.2's checks of a VDI header, in its order and words.</summary>
    internal static void Validate(VdiHeader h)
    {
        ulong size = h.DiskSize;
        if (size > VdiLayout.MaxDiskSize)
            throw new BlockException(Errno.EOPNOTSUPP, string.Create(CultureInfo.InvariantCulture, $"Unsupported VDI image size (size is 0x{size:x}, max supported is 0x{VdiLayout.MaxDiskSize:x})"));
        size = (size + VdiLayout.SectorSize - 1) & ~(ulong)(VdiLayout.SectorSize - 1);
        if (h.Signature != VdiLayout.Signature)
            throw new BlockException(Errno.EINVAL, $"Image not in VDI format (bad signature {h.Signature:x8})");
        if (h.Version != VdiLayout.Version11)
            throw new BlockException(Errno.EOPNOTSUPP, string.Create(CultureInfo.InvariantCulture, $"unsupported VDI image (version {h.Version >> 16}.{h.Version & 0xffff})"));
        if (h.OffsetBmap % VdiLayout.SectorSize != 0)
            throw new BlockException(Errno.EOPNOTSUPP, $"unsupported VDI image (unaligned block map offset 0x{h.OffsetBmap:x})");
        if (h.OffsetData % VdiLayout.SectorSize != 0)
            throw new BlockException(Errno.EOPNOTSUPP, $"unsupported VDI image (unaligned data offset 0x{h.OffsetData:x})");
        if (h.SectorSize != VdiLayout.SectorSize)
            throw new BlockException(Errno.EOPNOTSUPP, string.Create(CultureInfo.InvariantCulture, $"unsupported VDI image (sector size {h.SectorSize} is not {VdiLayout.SectorSize})"));
        if (h.BlockSize != VdiLayout.BlockSize)
            throw new BlockException(Errno.EOPNOTSUPP, string.Create(CultureInfo.InvariantCulture, $"unsupported VDI image (block size {h.BlockSize} is not {VdiLayout.BlockSize})"));
        ulong room = (ulong)h.BlocksInImage * h.BlockSize;
        if (size > room)
            throw new BlockException(Errno.EOPNOTSUPP, string.Create(CultureInfo.InvariantCulture, $"unsupported VDI image (disk size {size}, image bitmap has room for {room})"));
        if (!h.LinkUuidIsNull)
            throw new BlockException(Errno.EOPNOTSUPP, "unsupported VDI image (non-NULL link UUID)");
        if (!h.ParentUuidIsNull)
            throw new BlockException(Errno.EOPNOTSUPP, "unsupported VDI image (non-NULL parent UUID)");
        if (h.BlocksInImage > VdiLayout.MaxBlocks)
            throw new BlockException(Errno.EOPNOTSUPP, string.Create(CultureInfo.InvariantCulture, $"unsupported VDI image (too many blocks {h.BlocksInImage}, max is {VdiLayout.MaxBlocks})"));
    }

    internal uint Entry(long block) => BinaryPrimitives.ReadUInt32LittleEndian(_bmap.AsSpan((int)(block * 4)));

    private void SetEntry(long block, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(_bmap.AsSpan((int)(block * 4)), value);

    /// <summary>Where block <paramref name="entry"/> starts in the file; an entry past the map's blocks is damage, not an address.</summary>
    private long DataOffset(long block, uint entry)
    {
        if (entry >= _header.BlocksInImage)
            throw new ImageCorruptException(FileName, "block map entry", _header.OffsetBmap + (block * 4), $"block {block} points at block {entry}, past the image's {_header.BlocksInImage} blocks");
        return _header.OffsetData + ((long)entry * VdiLayout.BlockSize);
    }

    protected override async ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        while (buffer.Length > 0)
        {
            long block = offset / VdiLayout.BlockSize;
            int inBlock = (int)(offset % VdiLayout.BlockSize);
            int n = Math.Min(buffer.Length, VdiLayout.BlockSize - inBlock);
            uint entry = Entry(block);
            if (VdiLayout.IsAllocated(entry))
                await ReadFileAsync(DataOffset(block, entry) + inBlock, buffer[..n], cancellationToken).ConfigureAwait(false);
            else
                buffer.Span[..n].Clear();
            offset += n;
            buffer = buffer[n..];
        }
    }

    /// <summary>Reads the file, with zeros past its end (a block whose tail was never written is shorter in the file).</summary>
    private async ValueTask ReadFileAsync(long at, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        long have = Math.Clamp(_file.Length - at, 0, buffer.Length);
        if (have > 0)
            await _file.ReadAsync(at, buffer[..(int)have], cancellationToken).ConfigureAwait(false);
        buffer.Span[(int)have..].Clear();
    }

    protected override async ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags, CancellationToken cancellationToken)
    {
        while (data.Length > 0)
        {
            long block = offset / VdiLayout.BlockSize;
            int inBlock = (int)(offset % VdiLayout.BlockSize);
            int n = Math.Min(data.Length, VdiLayout.BlockSize - inBlock);
            uint entry = Entry(block);
            if (VdiLayout.IsAllocated(entry))
                await _file.WriteAsync(DataOffset(block, entry) + inBlock, data[..n], flags & RequestFlags.Fua, cancellationToken).ConfigureAwait(false);
            else
                await AllocateAsync(block, inBlock, data[..n], cancellationToken).ConfigureAwait(false);
            offset += n;
            data = data[n..];
        }

        if ((flags & RequestFlags.Fua) != 0)
            await FlushCoreAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Zeros need no new block: an unallocated or discarded block reads as zeros already, so only allocated
    /// blocks are zeroed, in place through the file (QEMU's vdi has no zero write and allocates instead).
    /// </summary>
    protected override async ValueTask WriteZeroesCoreAsync(long offset, long length, RequestFlags flags, CancellationToken cancellationToken)
    {
        while (length > 0)
        {
            long block = offset / VdiLayout.BlockSize;
            long inBlock = offset % VdiLayout.BlockSize;
            long n = Math.Min(length, VdiLayout.BlockSize - inBlock);
            uint entry = Entry(block);
            if (VdiLayout.IsAllocated(entry))
                await _file.WriteZeroesAsync(DataOffset(block, entry) + inBlock, n, flags & (RequestFlags.NoFallback | RequestFlags.Fua), cancellationToken).ConfigureAwait(false);
            offset += n;
            length -= n;
        }
    }

    /// <summary>
    /// Puts a new block at the end of the data area holding <paramref name="data"/> at <paramref name="inBlock"/>
    /// and zeros around it (a discarded block reads as zeros, and so must the rest of a new one). The map entry
    /// changes only in memory here; the flush writes it after the data is durable.
    /// </summary>
    private async ValueTask AllocateAsync(long block, int inBlock, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        byte[]? whole = null;
        try
        {
            uint entry = Entry(block);
            if (VdiLayout.IsAllocated(entry))
            {
                // Another write allocated it while this one waited.
                await _file.WriteAsync(DataOffset(block, entry) + inBlock, data, RequestFlags.None, cancellationToken).ConfigureAwait(false);
                return;
            }

            uint index = _header.BlocksAllocated;
            if (index >= _header.BlocksInImage)
                throw new ImageCorruptException(FileName, "blocks_allocated", VdiHeader.BlocksAllocatedOffset, $"{index} blocks are allocated already, the map has room for {_header.BlocksInImage}");
            long at = _header.OffsetData + ((long)index * VdiLayout.BlockSize);
            whole = ArrayPool<byte>.Shared.Rent(VdiLayout.BlockSize);
            var buf = whole.AsMemory(0, VdiLayout.BlockSize);
            buf.Span.Clear();
            data.CopyTo(buf[inBlock..]);
            await _file.WriteAsync(at, buf, RequestFlags.None, cancellationToken).ConfigureAwait(false);
            SetEntry(block, index);
            _header = _header with { BlocksAllocated = index + 1 };
            _headerDirty = true;
            long sector = block * 4 / VdiLayout.SectorSize;
            _dirtyFirst = Math.Min(_dirtyFirst, sector);
            _dirtyEnd = Math.Max(_dirtyEnd, sector + 1);
        }
        finally
        {
            if (whole != null)
                ArrayPool<byte>.Shared.Return(whole);
            _lock.Release();
        }
    }

    /// <summary>
    /// Data first, then the tables that point at it: the file is flushed, then the header (with the larger
    /// blocks_allocated) and the changed block-map sectors are written, then flushed again. When the map
    /// follows the header directly (every QEMU image) both go out in one write, so a killed process leaves
    /// either the old tables or the new ones; otherwise the header goes first, so a crash between the two
    /// leaves the count ahead of the map (a leaked block), never a block handed out twice.
    /// </summary>
    protected override async ValueTask FlushCoreAsync(CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_headerDirty || _dirtyEnd > 0)
            {
                await _file.FlushAsync(cancellationToken).ConfigureAwait(false);
                await WriteTablesAsync(cancellationToken).ConfigureAwait(false);
            }

            await _file.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _lock.Release();
        }
    }

    private async ValueTask WriteTablesAsync(CancellationToken cancellationToken)
    {
        _header.Write(_headerSector);
        int first = _dirtyEnd > 0 ? (int)_dirtyFirst * VdiLayout.SectorSize : 0;
        int end = (int)_dirtyEnd * VdiLayout.SectorSize;
        if (_header.OffsetBmap == VdiHeader.Size && end > 0)
        {
            byte[] run = ArrayPool<byte>.Shared.Rent(VdiHeader.Size + end);
            try
            {
                _headerSector.CopyTo(run, 0);
                _bmap.AsSpan(0, end).CopyTo(run.AsSpan(VdiHeader.Size));
                await _file.WriteAsync(0, run.AsMemory(0, VdiHeader.Size + end), RequestFlags.None, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(run);
            }
        }
        else
        {
            await _file.WriteAsync(0, _headerSector, RequestFlags.None, cancellationToken).ConfigureAwait(false);
            if (end > 0)
            {
                await _file.FlushAsync(cancellationToken).ConfigureAwait(false);
                await _file.WriteAsync(_header.OffsetBmap + first, _bmap.AsMemory(first, end - first), RequestFlags.None, cancellationToken).ConfigureAwait(false);
            }
        }

        _headerDirty = false;
        _dirtyFirst = long.MaxValue;
        _dirtyEnd = 0;
    }

    protected override async ValueTask<BlockStatus> BlockStatusCoreAsync(long offset, long length, CancellationToken cancellationToken)
    {
        long block = offset / VdiLayout.BlockSize;
        long inBlock = offset % VdiLayout.BlockSize;
        uint entry = Entry(block);
        if (!VdiLayout.IsAllocated(entry))
        {
            // Runs of unallocated blocks read as zeros; QEMU counts them as this layer's own (there is no backing).
            long n = VdiLayout.BlockSize - inBlock;
            long max = _header.BlocksInImage;
            for (long b = block + 1; n < length && b < max && !VdiLayout.IsAllocated(Entry(b)); b++)
                n += VdiLayout.BlockSize;
            return new BlockStatus(BlockStatusFlags.Zero | BlockStatusFlags.Allocated, Math.Min(n, length));
        }

        long host = DataOffset(block, entry) + inBlock;
        long len = Math.Min(length, VdiLayout.BlockSize - inBlock);
        var flags = BlockStatusFlags.Data | BlockStatusFlags.Allocated | BlockStatusFlags.OffsetValid;
        // QEMU 7.2 asks the file about a static image's blocks only (created sparse, they are holes until
        // written); a dynamic block is data to its end.
        if (!IsStatic)
            return new BlockStatus(flags, len, host, _file);
        if (host >= _file.Length)
            return new BlockStatus(flags | BlockStatusFlags.Zero, len, host, _file);
        var fst = await _file.GetBlockStatusAsync(host, Math.Min(len, _file.Length - host), cancellationToken).ConfigureAwait(false);
        return new BlockStatus(fst.IsZero ? flags | BlockStatusFlags.Zero : flags, Math.Min(len, fst.Length), host, _file);
    }

    public override async ValueTask<ImageInfo> GetImageInfoAsync(CancellationToken cancellationToken = default)
    {
        var info = await base.GetImageInfoAsync(cancellationToken).ConfigureAwait(false);
        info.ClusterSize = VdiLayout.BlockSize;
        return info;
    }

    /// <summary>QEMU 7.2 cannot resize this format; qemu-img's words.</summary>
    protected override ValueTask TruncateCoreAsync(long size, CancellationToken cancellationToken) =>
        throw new BlockException(Errno.EOPNOTSUPP, "Image format driver does not support resize");

    protected override ValueTask CloseCoreAsync()
    {
        _lock.Dispose();
        return ValueTask.CompletedTask;
    }
}
