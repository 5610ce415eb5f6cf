using System.Buffers.Binary;
using System.Globalization;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Io;

namespace SharpBlock.Drivers.Format.Parallels;

/// <summary>
/// A Parallels expanding image: a 64-byte header, the BAT (one 32-bit entry a cluster, 0 meaning never
/// written) and data clusters appended in allocation order. An allocating write puts the whole cluster at
/// the end of the data; its BAT entry reaches the disk at the next flush, after the data (FlushCoreAsync).
/// While open for writing the header carries the inuse mark, cleared again at a clean close, as QEMU does.
/// </summary>
public sealed partial class ParallelsNode : BlockNode
{
    private readonly BlockNode _file;
    private readonly uint[] _bat;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private readonly long _length;
    private readonly uint _tracks;
    private readonly long _clusterSize;
    // Sectors per BAT unit: 1 with the old magic (entries are sectors), tracks with the extended one.
    private readonly uint _offMultiplier;
    private ParallelsHeader _header;
    // The first sector past every cluster in use, where the next cluster goes.
    private long _dataEnd;
    private bool _unclean;
    private bool _markedInUse;

    // The BAT entries changed since the last flush (first inclusive, last exclusive).
    private long _dirtyFirst = long.MaxValue;
    private long _dirtyEnd;

    private ParallelsNode(BlockNode file, NodeSettings settings, ParallelsHeader header, uint[] bat, long length, long dataEnd)
        : base(settings)
    {
        _file = file;
        _header = header;
        _bat = bat;
        _length = length;
        _tracks = header.Tracks;
        _clusterSize = (long)header.Tracks * ParallelsLayout.SectorSize;
        _offMultiplier = header.Magic == ParallelsLayout.MagicClusters ? header.Tracks : 1;
        _dataEnd = dataEnd;
        _unclean = header.InUse == ParallelsLayout.InUseMagic;
        AttachChild(file, ChildRole.File, "file");
    }

    public override string DriverName => "parallels";

    public override long Length => _length;

    /// <summary>QEMU's parallels driver has no get_info, so qemu-img info shows no dirty flag and no cluster size.</summary>
    public override bool HasDriverInfo => false;

    internal ParallelsHeader Header => _header;

    internal long ClusterSize => _clusterSize;

    /// <summary>Whether the image carried the inuse mark when opened (a writer did not close it).</summary>
    public bool WasUnclean => _unclean;

    private string FileName => _file.Filename;

    /// <summary>Opens an image from its file node, refusing (in QEMU's words and order) what QEMU refuses.</summary>
    public static async ValueTask<ParallelsNode> OpenAsync(BlockNode file, NodeSettings settings, CancellationToken cancellationToken = default)
    {
        file.RefuseOtherWriters();
        long fileLength = file.Length;
        if (fileLength < ParallelsHeader.Size)
            throw new BlockException(Errno.EINVAL, "Image not in Parallels format");
        byte[] head = new byte[ParallelsHeader.Size];
        await file.ReadAsync(0, head, cancellationToken).ConfigureAwait(false);
        if (!ParallelsHeader.IsParallels(head))
            throw new BlockException(Errno.EINVAL, "Image not in Parallels format");
        var h = ParallelsHeader.Read(head);
        // The old magic keeps only 32 bits of the sector count.
        ulong sectors = h.Magic == ParallelsLayout.MagicClusters ? h.NbSectors : h.NbSectors & 0xffffffff;
        if (h.Tracks == 0)
            throw new BlockException(Errno.EINVAL, "Invalid image: Zero sectors per track");
        if (h.Tracks > ParallelsLayout.MaxTracks)
            throw new BlockException(Errno.EFBIG, "Invalid image: Too big cluster");
        if (h.BatEntries > ParallelsLayout.MaxBatEntries)
            throw new BlockException(Errno.EFBIG, "Catalog too large");
        // Beyond QEMU: a size the byte offsets cannot hold, and a BAT past the end of the file (read as
        // zeros by QEMU), are refused; the second bounds what a hostile header can make us allocate.
        if (sectors > long.MaxValue / ParallelsLayout.SectorSize)
            throw new BlockException(Errno.EFBIG, string.Create(CultureInfo.InvariantCulture, $"Invalid image: nb_sectors {sectors} is too large"));
        long batEnd = ParallelsHeader.Size + ((long)h.BatEntries * 4);
        if (batEnd > fileLength)
            throw new BlockException(Errno.EINVAL, string.Create(CultureInfo.InvariantCulture, $"Invalid image: the BAT (bat_entries {h.BatEntries}) lies beyond the end of the file ({fileLength} bytes)"));
        if (h.InUse == ParallelsLayout.InUseMagic && !settings.ReadOnly && !settings.ForCheck)
            throw new BlockException(Errno.EACCES, "parallels: Image was not closed correctly; cannot be opened read/write");

        uint[] bat = new uint[h.BatEntries];
        if (h.BatEntries > 0)
        {
            byte[] raw = new byte[h.BatEntries * 4L];
            await file.ReadAsync(ParallelsHeader.Size, raw, cancellationToken).ConfigureAwait(false);
            for (int i = 0; i < bat.Length; i++)
                bat[i] = BinaryPrimitives.ReadUInt32LittleEndian(raw.AsSpan(i * 4));
        }

        long multiplier = h.Magic == ParallelsLayout.MagicClusters ? h.Tracks : 1;
        long dataEnd = h.DataOff != 0 ? h.DataOff : (batEnd + ParallelsLayout.SectorSize - 1) / ParallelsLayout.SectorSize;
        foreach (uint e in bat)
            dataEnd = Math.Max(dataEnd, (e * multiplier) + h.Tracks);

        var node = new ParallelsNode(file, settings, h, bat, (long)sectors * ParallelsLayout.SectorSize, dataEnd);
        if (!settings.ReadOnly)
            await node.MarkInUseAsync(true, cancellationToken).ConfigureAwait(false);
        return node;
    }

    /// <summary>Writes the header with the inuse mark set or cleared, and makes it durable.</summary>
    private async ValueTask MarkInUseAsync(bool inUse, CancellationToken cancellationToken)
    {
        _header = _header with { InUse = inUse ? ParallelsLayout.InUseMagic : 0 };
        byte[] head = new byte[ParallelsHeader.Size];
        _header.Write(head);
        await _file.WriteAsync(0, head, RequestFlags.None, cancellationToken).ConfigureAwait(false);
        await _file.FlushAsync(cancellationToken).ConfigureAwait(false);
        _markedInUse = inUse;
    }

    internal uint Entry(long cluster) => cluster < _bat.Length ? _bat[cluster] : ParallelsLayout.Unallocated;

    /// <summary>Where the cluster a BAT entry names starts in the file.</summary>
    private long HostOffset(uint entry)
    {
        long sector = (long)entry * _offMultiplier;
        if (sector > long.MaxValue / ParallelsLayout.SectorSize)
            throw new ImageCorruptException(FileName, "BAT entry", ParallelsHeader.Size, $"entry {entry} points past any possible file offset");
        return sector * ParallelsLayout.SectorSize;
    }

    protected override async ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        while (buffer.Length > 0)
        {
            long cluster = offset / _clusterSize;
            long inCluster = offset % _clusterSize;
            int n = (int)Math.Min(buffer.Length, _clusterSize - inCluster);
            uint entry = Entry(cluster);
            if (entry != ParallelsLayout.Unallocated)
                await ReadFileAsync(HostOffset(entry) + inCluster, buffer[..n], cancellationToken).ConfigureAwait(false);
            else
                buffer.Span[..n].Clear();
            offset += n;
            buffer = buffer[n..];
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

    protected override async ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags, CancellationToken cancellationToken)
    {
        while (data.Length > 0)
        {
            long cluster = offset / _clusterSize;
            long inCluster = offset % _clusterSize;
            int n = (int)Math.Min(data.Length, _clusterSize - inCluster);
            uint entry = Entry(cluster);
            if (entry != ParallelsLayout.Unallocated)
                await _file.WriteAsync(HostOffset(entry) + inCluster, data[..n], flags & RequestFlags.Fua, cancellationToken).ConfigureAwait(false);
            else
                await AllocateAsync(cluster, inCluster, data[..n], cancellationToken).ConfigureAwait(false);
            offset += n;
            data = data[n..];
        }

        if ((flags & RequestFlags.Fua) != 0)
            await FlushCoreAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Zeros need no new cluster (an unallocated one reads as zeros); allocated ones are zeroed in place.</summary>
    protected override async ValueTask WriteZeroesCoreAsync(long offset, long length, RequestFlags flags, CancellationToken cancellationToken)
    {
        while (length > 0)
        {
            long cluster = offset / _clusterSize;
            long inCluster = offset % _clusterSize;
            long n = Math.Min(length, _clusterSize - inCluster);
            uint entry = Entry(cluster);
            if (entry != ParallelsLayout.Unallocated)
                await _file.WriteZeroesAsync(HostOffset(entry) + inCluster, n, flags & (RequestFlags.NoFallback | RequestFlags.Fua), cancellationToken).ConfigureAwait(false);
            offset += n;
            length -= n;
        }
    }

    /// <summary>
    /// Puts a new cluster at the end of the data holding <paramref name="data"/> at <paramref name="inCluster"/>
    /// and zeros around it. The BAT entry changes only in memory here; the flush writes it after the data.
    /// </summary>
    private async ValueTask AllocateAsync(long cluster, long inCluster, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            uint entry = Entry(cluster);
            if (entry != ParallelsLayout.Unallocated)
            {
                // Another write allocated it while this one waited.
                await _file.WriteAsync(HostOffset(entry) + inCluster, data, RequestFlags.None, cancellationToken).ConfigureAwait(false);
                return;
            }

            if (cluster >= _bat.Length)
                throw new ImageCorruptException(FileName, "bat_entries", ParallelsHeader.BatEntriesOffset, $"cluster {cluster} is past the BAT's {_bat.Length} entries");
            // A cluster-based BAT can only name cluster-aligned offsets.
            long units = (_dataEnd + _offMultiplier - 1) / _offMultiplier;
            if (units > uint.MaxValue)
                throw new BlockException(Errno.ENOSPC, "parallels: the BAT cannot address a new cluster past the end of the image");
            long at = units * _offMultiplier * ParallelsLayout.SectorSize;
            if (inCluster > 0)
                await _file.WriteZeroesAsync(at, inCluster, RequestFlags.None, cancellationToken).ConfigureAwait(false);
            await _file.WriteAsync(at + inCluster, data, RequestFlags.None, cancellationToken).ConfigureAwait(false);
            long tail = _clusterSize - inCluster - data.Length;
            if (tail > 0)
                await _file.WriteZeroesAsync(at + inCluster + data.Length, tail, RequestFlags.None, cancellationToken).ConfigureAwait(false);
            _bat[cluster] = (uint)units;
            _dataEnd = (units * _offMultiplier) + _tracks;
            _dirtyFirst = Math.Min(_dirtyFirst, cluster);
            _dirtyEnd = Math.Max(_dirtyEnd, cluster + 1);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Data first, then the BAT entries that point at it: flush, write the changed entries, flush again.</summary>
    protected override async ValueTask FlushCoreAsync(CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_dirtyEnd > 0)
            {
                await _file.FlushAsync(cancellationToken).ConfigureAwait(false);
                await WriteBatAsync(_dirtyFirst, _dirtyEnd, cancellationToken).ConfigureAwait(false);
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

    private async ValueTask WriteBatAsync(long first, long end, CancellationToken cancellationToken)
    {
        byte[] raw = new byte[(end - first) * 4];
        for (long i = first; i < end; i++)
            BinaryPrimitives.WriteUInt32LittleEndian(raw.AsSpan((int)((i - first) * 4)), _bat[i]);
        await _file.WriteAsync(ParallelsHeader.Size + (first * 4), raw, RequestFlags.None, cancellationToken).ConfigureAwait(false);
    }

    protected override ValueTask<BlockStatus> BlockStatusCoreAsync(long offset, long length, CancellationToken cancellationToken)
    {
        long cluster = offset / _clusterSize;
        long inCluster = offset % _clusterSize;
        uint entry = Entry(cluster);
        long n = _clusterSize - inCluster;
        if (entry == ParallelsLayout.Unallocated)
        {
            // Runs of unallocated clusters read as zeros and are not this layer's own (QEMU reports them unallocated).
            // Past the BAT nothing is allocated: the rest of the request is one run (no walk over a huge disk).
            for (long c = cluster + 1; n < length && Entry(c) == ParallelsLayout.Unallocated; c++)
                n = c >= _bat.Length ? length : n + _clusterSize;
            return ValueTask.FromResult(new BlockStatus(BlockStatusFlags.Zero, Math.Min(n, length)));
        }

        return ValueTask.FromResult(new BlockStatus(BlockStatusFlags.Data | BlockStatusFlags.Allocated | BlockStatusFlags.OffsetValid, Math.Min(n, length), HostOffset(entry) + inCluster, _file));
    }

    /// <summary>QEMU 7.2 cannot resize this format; qemu-img's words.</summary>
    protected override ValueTask TruncateCoreAsync(long size, CancellationToken cancellationToken) =>
        throw new BlockException(Errno.EOPNOTSUPP, "Image format driver does not support resize");

    /// <summary>
    /// A clean close: the BAT is flushed already (the base flushes first); the inuse mark is cleared and, as
    /// QEMU does, the file is cut (or extended) to the end of the last cluster.
    /// </summary>
    protected override async ValueTask CloseCoreAsync()
    {
        try
        {
            if (_markedInUse)
            {
                await MarkInUseAsync(false, CancellationToken.None).ConfigureAwait(false);
                long end = _dataEnd * ParallelsLayout.SectorSize;
                if (_file.Length != end)
                {
                    try
                    {
                        await _file.TruncateAsync(end, CancellationToken.None).ConfigureAwait(false);
                        await _file.FlushAsync(CancellationToken.None).ConfigureAwait(false);
                    }
                    catch (BlockException)
                    {
                        // As QEMU: the cut is tidying only (a hostile data_off can ask for more than the file can
                        // hold); the image is consistent without it, so a failure does not fail the close.
                    }
                }
            }
        }
        finally
        {
            _lock.Dispose();
        }
    }
}
