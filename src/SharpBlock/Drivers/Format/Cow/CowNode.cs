using System.Globalization;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Io;

namespace SharpBlock.Drivers.Format.Cow;

/// <summary>
/// A User-Mode Linux COW v2 image: a header naming the backing file, a bitmap of the sectors this image
/// holds, and a data area where sector i always lives at the same place. A write puts whole sectors (the
/// rest of a partial one read from the backing file) in the data area; the bitmap bits change in memory and
/// reach the file at the next flush, after a flush of the data, so a set bit never names unwritten data.
/// </summary>
public sealed class CowNode : BlockNode
{
    private const int Sector = CowLayout.SectorSize;

    private readonly BlockNode _file;
    private readonly CowHeader _header;
    private readonly byte[] _bitmap;
    private readonly long _dataOffset;
    private readonly long _length;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private long _dirtyFirst = long.MaxValue;
    private long _dirtyEnd;

    private CowNode(BlockNode file, NodeSettings settings, CowHeader header, byte[] bitmap)
        : base(settings)
    {
        _file = file;
        _header = header;
        _bitmap = bitmap;
        _length = (long)header.DiskSize / Sector * Sector;
        _dataOffset = CowLayout.DataOffset((long)header.DiskSize);
        AttachChild(file, ChildRole.File, "file");
    }

    public override string DriverName => "cow";

    public override long Length => _length;

    public override string? BackingFileName => _header.BackingFile.Length > 0 ? _header.BackingFile : null;

    internal void AttachBacking(BlockNode backing) => AttachChild(backing, ChildRole.Backing, "backing");

    public static async ValueTask<CowNode> OpenAsync(BlockNode file, NodeSettings settings, CancellationToken cancellationToken = default)
    {
        file.RefuseOtherWriters();
        long fileLength = file.Length;
        if (fileLength < CowHeader.Size)
            throw new BlockException(Errno.EINVAL, $"Image not in cow format (file of {fileLength} bytes is shorter than the header)");
        byte[] head = new byte[CowHeader.Size];
        await file.ReadAsync(0, head, cancellationToken).ConfigureAwait(false);
        var h = CowHeader.Read(head);
        if (h.Magic != CowLayout.Magic)
            throw new BlockException(Errno.EMEDIUMTYPE, "Image not in cow format (bad magic)");
        if (h.Version != CowLayout.Version)
            throw new BlockException(Errno.EOPNOTSUPP, string.Create(CultureInfo.InvariantCulture, $"COW version {h.Version} is not supported, only version 2"));
        if (h.SectorSize != Sector)
            throw new BlockException(Errno.EOPNOTSUPP, string.Create(CultureInfo.InvariantCulture, $"cow sectorsize {h.SectorSize} is not supported, only 512"));
        if (h.DiskSize > CowLayout.MaxDiskSize)
            throw new BlockException(Errno.EFBIG, string.Create(CultureInfo.InvariantCulture, $"cow size {h.DiskSize} is larger than the supported 0x{CowLayout.MaxDiskSize:x}"));
        long bitmapBytes = CowLayout.BitmapBytes((long)h.DiskSize);
        if (CowHeader.Size + bitmapBytes > fileLength)
            throw new BlockException(Errno.EINVAL, string.Create(CultureInfo.InvariantCulture, $"cow sector bitmap ({bitmapBytes} bytes for size {h.DiskSize}) lies beyond the end of the file ({fileLength} bytes)"));
        byte[] bitmap = new byte[bitmapBytes];
        if (bitmapBytes > 0)
            await file.ReadAsync(CowHeader.Size, bitmap, cancellationToken).ConfigureAwait(false);
        return new CowNode(file, settings, h, bitmap);
    }

    private bool Has(long sector) => (_bitmap[sector >> 3] & (1 << (int)(sector & 7))) != 0;

    protected override async ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        while (buffer.Length > 0)
        {
            long sector = offset / Sector;
            bool mine = Has(sector);
            // A run of sectors that come from the same place, up to the end of the request.
            int n = Sector - (int)(offset % Sector);
            while (n < buffer.Length && Has(sector + ((offset % Sector) + n) / Sector) == mine)
                n += Sector;
            n = Math.Min(n, buffer.Length);
            var chunk = buffer[..n];
            if (mine)
                await ReadFileAsync(_dataOffset + offset, chunk, cancellationToken).ConfigureAwait(false);
            else
                await ReadBackingAsync(offset, chunk, cancellationToken).ConfigureAwait(false);
            offset += n;
            buffer = buffer[n..];
        }
    }

    private async ValueTask ReadBackingAsync(long offset, Memory<byte> chunk, CancellationToken ct)
    {
        var backing = Backing;
        long avail = backing == null ? 0 : Math.Max(0, backing.Length - offset);
        int inBacking = (int)Math.Min(avail, chunk.Length);
        if (inBacking > 0)
            await backing!.ReadAsync(offset, chunk[..inBacking], ct).ConfigureAwait(false);
        chunk.Span[inBacking..].Clear();
    }

    private async ValueTask ReadFileAsync(long at, Memory<byte> buffer, CancellationToken ct)
    {
        long have = Math.Clamp(_file.Length - at, 0, buffer.Length);
        if (have > 0)
            await _file.ReadAsync(at, buffer[..(int)have], ct).ConfigureAwait(false);
        buffer.Span[(int)have..].Clear();
    }

    protected override async ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags, CancellationToken cancellationToken)
    {
        long start = offset / Sector * Sector;
        long end = (offset + data.Length + Sector - 1) / Sector * Sector;
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ReadOnlyMemory<byte> whole = data;
            if (start != offset || end != offset + data.Length)
            {
                // Whole sectors only: the parts of the first and last sector outside the request keep what they read now.
                byte[] merged = new byte[end - start];
                await ReadCoreAsync(start, merged.AsMemory(0, Sector), cancellationToken).ConfigureAwait(false);
                if (end - Sector > start)
                    await ReadCoreAsync(end - Sector, merged.AsMemory((int)(end - Sector - start), Sector), cancellationToken).ConfigureAwait(false);
                data.CopyTo(merged.AsMemory((int)(offset - start)));
                whole = merged;
            }

            await _file.WriteAsync(_dataOffset + start, whole, RequestFlags.None, cancellationToken).ConfigureAwait(false);
            for (long s = start / Sector; s < end / Sector; s++)
                _bitmap[s >> 3] |= (byte)(1 << (int)(s & 7));
            _dirtyFirst = Math.Min(_dirtyFirst, (start / Sector) >> 3);
            _dirtyEnd = Math.Max(_dirtyEnd, ((end / Sector) + 7) >> 3);
        }
        finally
        {
            _lock.Release();
        }

        if ((flags & RequestFlags.Fua) != 0)
            await FlushCoreAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Data first, flushed, then the changed bitmap bytes, flushed.</summary>
    protected override async ValueTask FlushCoreAsync(CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_dirtyEnd > 0)
            {
                await _file.FlushAsync(cancellationToken).ConfigureAwait(false);
                long first = _dirtyFirst, end = Math.Min(_dirtyEnd, _bitmap.Length);
                await _file.WriteAsync(CowHeader.Size + first, _bitmap.AsMemory((int)first, (int)(end - first)), RequestFlags.None, cancellationToken).ConfigureAwait(false);
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

    protected override ValueTask<BlockStatus> BlockStatusCoreAsync(long offset, long length, CancellationToken cancellationToken)
    {
        long sector = offset / Sector;
        bool mine = Has(sector);
        long n = Sector - (offset % Sector);
        // Capped so one answer over a huge image stays quick; the caller asks again for the rest.
        long last = Math.Min(_length / Sector, sector + (1 << 16));
        for (long s = sector + 1; n < length && s < last && Has(s) == mine; s++)
            n += Sector;
        n = Math.Min(n, length);
        if (mine)
            return ValueTask.FromResult(new BlockStatus(BlockStatusFlags.Data | BlockStatusFlags.Allocated | BlockStatusFlags.OffsetValid, n, _dataOffset + offset, _file));
        return ValueTask.FromResult(new BlockStatus(Backing == null ? BlockStatusFlags.Zero : BlockStatusFlags.None, n));
    }

    protected override ValueTask TruncateCoreAsync(long size, CancellationToken cancellationToken) =>
        throw new BlockException(Errno.EOPNOTSUPP, "Image format driver does not support resize");

    protected override ValueTask CloseCoreAsync()
    {
        _lock.Dispose();
        return ValueTask.CompletedTask;
    }
}
