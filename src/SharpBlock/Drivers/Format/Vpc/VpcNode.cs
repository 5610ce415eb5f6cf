using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Io;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Vpc;

/// <summary>
/// A Virtual PC / Hyper-V image. Fixed: the guest bytes, then the footer. Dynamic: a footer copy, the
/// dynamic header, the BAT (one 32-bit sector number per block), then blocks of a sector bitmap and the
/// data, and the footer at the end of the file. A new block goes where the footer was (its bitmap
/// overwrites it); at the next flush the footer is rewritten past the new end and then the BAT entries
/// that point at the new blocks, each step after the one before is durable.
/// </summary>
public sealed class VpcNode : BlockNode
{
    private readonly BlockNode _file;
    private readonly byte[] _footer;
    private readonly VpcFooter _parsed;
    private readonly bool _fixed;
    private readonly long _length;
    private readonly SemaphoreSlim _lock = new(1, 1);

    // Dynamic images only.
    private readonly byte[] _bat = [];
    private readonly long _batOffset;
    private readonly long _blockSize;
    private readonly long _bitmapSize;
    private readonly long _metadataEnd;
    private long _freeDataOffset;
    private long _dirtyFirst = long.MaxValue;
    private long _dirtyEnd;
    private bool _footerDirty;

    private VpcNode(BlockNode file, NodeSettings settings, byte[] footer, VpcFooter parsed, bool isFixed, long length)
        : base(settings)
    {
        _file = file;
        _footer = footer;
        _parsed = parsed;
        _fixed = isFixed;
        _length = length;
        AttachChild(file, ChildRole.File, "file");
    }

    private VpcNode(BlockNode file, NodeSettings settings, byte[] footer, VpcFooter parsed, long length, byte[] bat, long batOffset, long blockSize, long freeDataOffset)
        : this(file, settings, footer, parsed, parsed.DiskType == VpcLayout.TypeFixed, length)
    {
        _bat = bat;
        _batOffset = batOffset;
        _blockSize = blockSize;
        _bitmapSize = VpcLayout.BitmapSize(blockSize);
        _metadataEnd = (batOffset + bat.Length + VpcLayout.SectorSize - 1) & ~(long)(VpcLayout.SectorSize - 1);
        _freeDataOffset = freeDataOffset;
    }

    public override string DriverName => "vpc";

    public override long Length => _length;

    /// <summary>Whether guest bytes sit in the file one to one (the footer says fixed).</summary>
    public bool IsFixed => _fixed;

    internal VpcFooter Footer => _parsed;

    internal long BlockSize => _blockSize;

    private string FileName => _file.Filename;

    /// <summary>Opens an image from its file node, refusing (in QEMU 7.2's words and order) what QEMU refuses.</summary>
    public static async ValueTask<VpcNode> OpenAsync(BlockNode file, NodeSettings settings, CancellationToken cancellationToken = default)
    {
        file.RefuseOtherWriters();
        long fileLength = file.Length;
        byte[] footer = new byte[VpcFooter.Size];
        await ReadClippedAsync(file, 0, footer, cancellationToken).ConfigureAwait(false);
        bool dynamic = true;
        var f = VpcFooter.Read(footer);
        if (!f.HasCookie)
        {
            // Only a fixed image lacks the copy at byte 0; its footer is the file's last sector.
            if (fileLength < VpcFooter.Size)
                throw new BlockException(Errno.EINVAL, "File too small for a VHD header");
            await file.ReadAsync(fileLength - VpcFooter.Size, footer, cancellationToken).ConfigureAwait(false);
            f = VpcFooter.Read(footer);
            if (!f.HasCookie || f.DiskType != VpcLayout.TypeFixed)
                throw new BlockException(Errno.EINVAL, "invalid VPC image");
            dynamic = false;
        }

        if (VpcLayout.Checksum(footer, VpcFooter.ChecksumOffset) != f.Checksum)
            throw new BlockException(Errno.EINVAL, "Incorrect header checksum");
        long sectors = VpcGeometry.VirtualSectors(f);
        if (sectors > VpcLayout.MaxSectors)
            throw new BlockException(Errno.EFBIG, "File too large");
        long length = sectors * VpcLayout.SectorSize;
        if (!dynamic)
            return new VpcNode(file, settings, footer, f, isFixed: true, length);
        return await OpenDynamicAsync(file, settings, footer, f, length, cancellationToken).ConfigureAwait(false);
    }

    private static async ValueTask<VpcNode> OpenDynamicAsync(BlockNode file, NodeSettings settings, byte[] footer, VpcFooter f, long length, CancellationToken cancellationToken)
    {
        long fileLength = file.Length;
        byte[] head = new byte[VpcDynamicHeader.Size];
        // A header offset past the file reads as zeros, so it fails on the cookie as in QEMU.
        if (f.DataOffset <= (ulong)fileLength)
            await ReadClippedAsync(file, (long)f.DataOffset, head, cancellationToken).ConfigureAwait(false);
        var d = VpcDynamicHeader.Read(head);
        if (!d.HasCookie)
            throw new BlockException(Errno.EINVAL, "Invalid header magic");
        long blockSize = d.BlockSize;
        if (!System.Numerics.BitOperations.IsPow2(d.BlockSize) || blockSize < VpcLayout.SectorSize)
            throw new BlockException(Errno.EINVAL, string.Create(CultureInfo.InvariantCulture, $"Invalid block size {d.BlockSize}"));
        if (length / blockSize > uint.MaxValue)
            throw new BlockException(Errno.EINVAL, "Too many blocks");
        if ((long)d.MaxTableEntries * blockSize < length)
            throw new BlockException(Errno.EINVAL, "Page table too small");
        if (d.MaxTableEntries > VpcLayout.MaxTableEntries)
            throw new BlockException(Errno.EINVAL, string.Create(CultureInfo.InvariantCulture, $"Max Table Entries too large ({(int)d.MaxTableEntries})"));
        long batBytes = (long)d.MaxTableEntries * 4;
        // Beyond QEMU: the BAT must lie inside the file before we allocate room for it (QEMU would read zeros,
        // which name sector 0, and fail later on the end-of-file check).
        if (d.TableOffset > (ulong)fileLength || (long)d.TableOffset + batBytes > fileLength)
            throw new BlockException(Errno.EINVAL, string.Create(CultureInfo.InvariantCulture, $"VHD block allocation table (table_offset 0x{d.TableOffset:x}, {d.MaxTableEntries} entries) lies beyond the end of the file ({fileLength} bytes)"));
        long batOffset = (long)d.TableOffset;
        byte[] bat = new byte[batBytes];
        if (batBytes > 0)
            await file.ReadAsync(batOffset, bat, cancellationToken).ConfigureAwait(false);
        long bitmap = VpcLayout.BitmapSize(blockSize);
        long free = (batOffset + batBytes + VpcLayout.SectorSize - 1) & ~(long)(VpcLayout.SectorSize - 1);
        for (int i = 0; i < bat.Length; i += 4)
        {
            uint e = BinaryPrimitives.ReadUInt32BigEndian(bat.AsSpan(i));
            if (e != VpcLayout.Unallocated)
                free = Math.Max(free, ((long)e * VpcLayout.SectorSize) + bitmap + blockSize);
        }

        if (free > fileLength)
            throw new BlockException(Errno.EINVAL, "block-vpc: free_data_block_offset points after the end of file. The image has been truncated.");
        return new VpcNode(file, settings, footer, f, length, bat, batOffset, blockSize, free);
    }

    private static async ValueTask ReadClippedAsync(BlockNode file, long at, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        long have = Math.Clamp(file.Length - at, 0, buffer.Length);
        if (have > 0)
            await file.ReadAsync(at, buffer[..(int)have], cancellationToken).ConfigureAwait(false);
        buffer.Span[(int)have..].Clear();
    }

    private uint Entry(long block) => block * 4 < _bat.Length ? BinaryPrimitives.ReadUInt32BigEndian(_bat.AsSpan((int)(block * 4))) : VpcLayout.Unallocated;

    /// <summary>Where the data of an allocated block starts (after its bitmap).</summary>
    private long DataOffset(uint entry) => ((long)entry * VpcLayout.SectorSize) + _bitmapSize;

    protected override async ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        if (_fixed)
        {
            await ReadClippedAsync(_file, offset, buffer, cancellationToken).ConfigureAwait(false);
            return;
        }

        while (buffer.Length > 0)
        {
            long block = offset / _blockSize;
            long inBlock = offset % _blockSize;
            int n = (int)Math.Min(buffer.Length, _blockSize - inBlock);
            uint entry = Entry(block);
            // QEMU 7.2 reads the whole block once it is allocated, whatever its sector bitmap says.
            if (entry != VpcLayout.Unallocated)
                await ReadClippedAsync(_file, DataOffset(entry) + inBlock, buffer[..n], cancellationToken).ConfigureAwait(false);
            else
                buffer.Span[..n].Clear();
            offset += n;
            buffer = buffer[n..];
        }
    }

    protected override async ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags, CancellationToken cancellationToken)
    {
        if (_fixed)
        {
            CheckFixedRange(offset, data.Length);
            await _file.WriteAsync(offset, data, flags, cancellationToken).ConfigureAwait(false);
            return;
        }

        while (data.Length > 0)
        {
            long block = offset / _blockSize;
            long inBlock = offset % _blockSize;
            int n = (int)Math.Min(data.Length, _blockSize - inBlock);
            uint entry = Entry(block);
            if (entry != VpcLayout.Unallocated)
                await _file.WriteAsync(CheckedDataOffset(block, entry) + inBlock, data[..n], RequestFlags.None, cancellationToken).ConfigureAwait(false);
            else
                await AllocateAsync(block, inBlock, data[..n], cancellationToken).ConfigureAwait(false);
            offset += n;
            data = data[n..];
        }

        if ((flags & RequestFlags.Fua) != 0)
            await FlushCoreAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Zeros need no new block: an unallocated block reads as zeros already, so only allocated blocks (and a
    /// fixed image's bytes) are zeroed, in place through the file (QEMU's vpc allocates instead).
    /// </summary>
    protected override async ValueTask WriteZeroesCoreAsync(long offset, long length, RequestFlags flags, CancellationToken cancellationToken)
    {
        flags &= RequestFlags.NoFallback | RequestFlags.Fua;
        if (_fixed)
        {
            CheckFixedRange(offset, length);
            await _file.WriteZeroesAsync(offset, length, flags, cancellationToken).ConfigureAwait(false);
            return;
        }

        while (length > 0)
        {
            long block = offset / _blockSize;
            long inBlock = offset % _blockSize;
            long n = Math.Min(length, _blockSize - inBlock);
            uint entry = Entry(block);
            if (entry != VpcLayout.Unallocated)
                await _file.WriteZeroesAsync(CheckedDataOffset(block, entry) + inBlock, n, flags, cancellationToken).ConfigureAwait(false);
            offset += n;
            length -= n;
        }
    }

    /// <summary>
    /// A footer whose size claims more than the file holds must not let guest writes land on the footer; and a
    /// "fixed" footer found at byte 0 (QEMU then reads the file from byte 0, headers included) takes no writes.
    /// </summary>
    private void CheckFixedRange(long offset, long length)
    {
        if (_blockSize != 0)
            throw new ImageCorruptException(FileName, "disk_type", VpcFooter.DiskTypeOffset, "the footer at byte 0 says fixed, so guest writes would overwrite the image's headers");
        long footerAt = _file.Length - VpcFooter.Size;
        if (offset + length > footerAt)
            throw new ImageCorruptException(FileName, "current_size", footerAt + VpcFooter.CurrentSizeOffset, $"a write at {offset}+{length} would overwrite the footer at {footerAt}");
    }

    /// <summary>A block that overlaps the footer copy, the header or the BAT is damage: writing it would overwrite them.</summary>
    private long CheckedDataOffset(long block, uint entry)
    {
        long start = (long)entry * VpcLayout.SectorSize;
        if (start < _metadataEnd)
            throw new ImageCorruptException(FileName, "BAT entry", _batOffset + (block * 4), $"block {block} at sector {entry} overlaps the image's headers and BAT (which end at {_metadataEnd})");
        return start + _bitmapSize;
    }

    /// <summary>
    /// Puts a new block where the footer is: an all-ones sector bitmap (as QEMU writes, every sector counts
    /// as present), then the guest's bytes. Bytes of the block the write does not cover must read as zeros:
    /// past the old end of the file they do by themselves; file bytes already there (a block left by a
    /// crash before its BAT entry was written) are zeroed first.
    /// </summary>
    private async ValueTask AllocateAsync(long block, long inBlock, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            uint entry = Entry(block);
            if (entry != VpcLayout.Unallocated)
            {
                await _file.WriteAsync(CheckedDataOffset(block, entry) + inBlock, data, RequestFlags.None, cancellationToken).ConfigureAwait(false);
                return;
            }

            if (block * 4 >= _bat.Length)
                throw new ImageCorruptException(FileName, "max_table_entries", VpcLayout.DynamicHeaderOffset + VpcDynamicHeader.MaxTableEntriesOffset, $"block {block} is past the BAT's {_bat.Length / 4} entries");
            long start = _freeDataOffset;
            long sector = start / VpcLayout.SectorSize;
            if (sector >= VpcLayout.Unallocated)
                throw new BlockException(Errno.EFBIG, "The VHD file cannot grow past 2 TiB of sectors");
            long dataStart = start + _bitmapSize;
            long old = _file.Length;
            byte[] bitmap = ArrayPool<byte>.Shared.Rent((int)_bitmapSize);
            try
            {
                bitmap.AsSpan(0, (int)_bitmapSize).Fill(0xff);
                await _file.WriteAsync(start, bitmap.AsMemory(0, (int)_bitmapSize), RequestFlags.None, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(bitmap);
            }

            if (inBlock > 0 && dataStart < old)
                await _file.WriteZeroesAsync(dataStart, Math.Min(inBlock, old - dataStart), RequestFlags.None, cancellationToken).ConfigureAwait(false);
            long after = dataStart + inBlock + data.Length;
            if (after < old && inBlock + data.Length < _blockSize)
                await _file.WriteZeroesAsync(after, Math.Min(_blockSize - inBlock - data.Length, old - after), RequestFlags.None, cancellationToken).ConfigureAwait(false);
            await _file.WriteAsync(dataStart + inBlock, data, RequestFlags.None, cancellationToken).ConfigureAwait(false);

            BinaryPrimitives.WriteUInt32BigEndian(_bat.AsSpan((int)(block * 4)), (uint)sector);
            _freeDataOffset = dataStart + _blockSize;
            _footerDirty = true;
            long batSector = block * 4 / VpcLayout.SectorSize;
            _dirtyFirst = Math.Min(_dirtyFirst, batSector);
            _dirtyEnd = Math.Max(_dirtyEnd, batSector + 1);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>
    /// Data and bitmaps first; then the footer past the new end (a crash before it leaves the dynamic image
    /// readable through its copy at byte 0); then the BAT sectors that point at the new blocks. A crash at
    /// any point leaks the new blocks at worst: the BAT never names a block whose data is not durable.
    /// </summary>
    protected override async ValueTask FlushCoreAsync(CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_footerDirty)
            {
                await _file.FlushAsync(cancellationToken).ConfigureAwait(false);
                await _file.WriteAsync(_freeDataOffset, _footer, RequestFlags.None, cancellationToken).ConfigureAwait(false);
                await _file.FlushAsync(cancellationToken).ConfigureAwait(false);
                long first = _dirtyFirst * VpcLayout.SectorSize;
                long end = Math.Min(_dirtyEnd * VpcLayout.SectorSize, _bat.Length);
                await _file.WriteAsync(_batOffset + first, _bat.AsMemory((int)first, (int)(end - first)), RequestFlags.None, cancellationToken).ConfigureAwait(false);
                _footerDirty = false;
                _dirtyFirst = long.MaxValue;
                _dirtyEnd = 0;
            }

            await _file.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _lock.Release();
        }
    }

    protected override async ValueTask<BlockStatus> BlockStatusCoreAsync(long offset, long length, CancellationToken cancellationToken)
    {
        // As QEMU 7.2: a fixed image is data throughout, and the file says which of it is still a hole (zeros).
        if (_fixed)
            return await DataStatusAsync(offset, length, offset, recurse: true, cancellationToken).ConfigureAwait(false);

        long block = offset / _blockSize;
        long inBlock = offset % _blockSize;
        uint entry = Entry(block);
        if (entry == VpcLayout.Unallocated)
        {
            long n = _blockSize - inBlock;
            long max = _bat.Length / 4;
            for (long b = block + 1; n < length && b < max && Entry(b) == VpcLayout.Unallocated; b++)
                n += _blockSize;
            if (block + 1 >= max)
                n = length;
            return new BlockStatus(BlockStatusFlags.Zero | BlockStatusFlags.Allocated, Math.Min(n, length));
        }

        // A dynamic block is data up to its end; QEMU does not ask the file whether parts of it are holes.
        return await DataStatusAsync(offset, Math.Min(length, _blockSize - inBlock), DataOffset(entry) + inBlock, recurse: false, cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask<BlockStatus> DataStatusAsync(long offset, long length, long host, bool recurse, CancellationToken cancellationToken)
    {
        var flags = BlockStatusFlags.Data | BlockStatusFlags.Allocated | BlockStatusFlags.OffsetValid;
        if (!recurse)
            return new BlockStatus(flags, length, host, _file);
        if (host >= _file.Length)
            return new BlockStatus(flags | BlockStatusFlags.Zero, length, host, _file);
        var fst = await _file.GetBlockStatusAsync(host, Math.Min(length, _file.Length - host), cancellationToken).ConfigureAwait(false);
        return new BlockStatus(fst.IsZero ? flags | BlockStatusFlags.Zero : flags, Math.Min(length, fst.Length), host, _file);
    }

    public override async ValueTask<ImageInfo> GetImageInfoAsync(CancellationToken cancellationToken = default)
    {
        var info = await base.GetImageInfoAsync(cancellationToken).ConfigureAwait(false);
        // QEMU reports a cluster size for dynamic images only (a fixed one has no blocks).
        if (!_fixed)
            info.ClusterSize = (int)Math.Min(_blockSize, int.MaxValue);
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
