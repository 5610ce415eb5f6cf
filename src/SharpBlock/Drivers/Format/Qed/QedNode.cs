using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Io;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Qed;

/// <summary>
/// A QED image: a header, an L1 table of L2 table offsets, L2 tables of data cluster offsets (0 unallocated,
/// 1 reads as zeros), clusters appended at the end of the file. Allocating writes put the data first; the
/// changed L2 tables and then the L1 table reach the disk at the next flush, each after a flush of what they
/// point to (see <see cref="FlushCoreAsync"/>). The need-check bit is set (and durable) before the first
/// allocation and cleared on a clean close, as QEMU does, so a crash in between makes the next writer check.
/// </summary>
public sealed partial class QedNode : BlockNode, IBackingFileFormat
{
    /// <summary>Clean L2 tables kept beyond this many bytes are dropped (dirty ones stay until the flush).</summary>
    private const long CleanCacheBytes = 32L << 20;

    private const long MaxRunClusters = 1 << 20;

    private readonly BlockNode _file;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private readonly ulong[] _l1;
    private readonly Dictionary<ulong, ulong[]> _l2 = [];
    private readonly HashSet<ulong> _dirtyL2 = [];
    private readonly int _clusterSize;
    private readonly int _tableBytes;
    private readonly int _entries;
    private QedHeader _header;
    private string? _backingName;
    private bool _l1Dirty;
    private readonly FormatDebugEvents _debug;

    // Where the next cluster goes: the file's length rounded up to a cluster, grown as clusters are handed out.
    private long _fileEnd;

    private QedNode(BlockNode file, NodeSettings settings, QedHeader header, ulong[] l1, string? backingName)
        : base(settings)
    {
        _file = file;
        _header = header;
        _l1 = l1;
        _backingName = backingName;
        _clusterSize = (int)header.ClusterSize;
        _tableBytes = checked((int)((long)header.TableSize * header.ClusterSize));
        _entries = _tableBytes / sizeof(ulong);
        _fileEnd = RoundUp(file.Length);
        AttachChild(file, ChildRole.File, "file");
        _debug = FormatDebugEvents.Attach(file);
    }

    public override string DriverName => "qed";

    public override long Length => (long)_header.ImageSize;

    internal QedHeader Header => _header;

    private string FileName => _file.Filename;

    public override string? BackingFileName => _backingName;

    /// <summary>QED records a format only as "raw, do not probe"; anything else is probed.</summary>
    public override string? BackingFormat =>
        _backingName != null && (_header.Features & QedLayout.FeatureBackingFormatNoProbe) != 0 ? "raw" : null;

    internal void AttachBacking(BlockNode backing) => AttachChild(backing, ChildRole.Backing, "backing");

    private long RoundUp(long v) => (v + _clusterSize - 1) / _clusterSize * _clusterSize;

    /// <summary>Opens an image from its file node, refusing what QEMU refuses (each refusal names its field).</summary>
    public static async ValueTask<QedNode> OpenAsync(BlockNode file, NodeSettings settings, CancellationToken cancellationToken = default)
    {
        file.RefuseOtherWriters();
        long fileLength = file.Length;
        // A short file reads as its bytes and zeros after them, as QEMU reads it; the checks then refuse it.
        byte[] head = new byte[QedHeader.Size];
        await file.ReadAsync(0, head.AsMemory(0, (int)Math.Min(fileLength, QedHeader.Size)), cancellationToken).ConfigureAwait(false);
        var h = QedHeader.Read(head);
        Validate(h, fileLength);

        string? backingName = null;
        if (h.HasBackingFile)
        {
            byte[] name = new byte[h.BackingFilenameSize];
            await file.ReadAsync(h.BackingFilenameOffset, name, cancellationToken).ConfigureAwait(false);
            backingName = Encoding.UTF8.GetString(name);
        }

        byte[] l1Bytes = new byte[(long)h.TableSize * h.ClusterSize];
        await file.ReadAsync((long)h.L1TableOffset, l1Bytes, cancellationToken).ConfigureAwait(false);
        var l1 = new ulong[l1Bytes.Length / sizeof(ulong)];
        for (int i = 0; i < l1.Length; i++)
            l1[i] = BinaryPrimitives.ReadUInt64LittleEndian(l1Bytes.AsSpan(i * sizeof(ulong)));
        var node = new QedNode(file, settings, h, l1, backingName);
        try
        {
            // An image not closed cleanly is checked (and repaired) before anything writes to it, as QEMU
            // does; read-only it is opened as it is, which helps recover data from it.
            if (h.NeedCheck && !settings.ReadOnly)
                await node.CheckLockedAsync(fix: true, report: null, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await node.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return node;
    }

    /// <summary>
    /// QEMU 7.2's checks of a header, in its order and words (each names its field), plus the bounds that
    /// keep a hostile header from costing memory: every table must lie wholly inside the file.
    /// </summary>
    internal static void Validate(QedHeader h, long fileLength)
    {
        if (h.Magic != QedLayout.Magic)
            throw new BlockException(Errno.EINVAL, "Image not in QED format");
        if ((h.Features & ~QedLayout.KnownFeatures) != 0)
            throw new BlockException(Errno.EOPNOTSUPP, $"Unsupported QED features: {h.Features & ~QedLayout.KnownFeatures:x}");
        if (!QedLayout.ClusterSizeValid(h.ClusterSize))
            throw new BlockException(Errno.EINVAL, "QED cluster size is invalid");
        if (!QedLayout.TableSizeValid(h.TableSize))
            throw new BlockException(Errno.EINVAL, "QED table size is invalid");
        if (!QedLayout.ImageSizeValid(h.ImageSize, h.ClusterSize, h.TableSize))
            throw new BlockException(Errno.EINVAL, "QED image size is invalid");
        long fileEnd = fileLength / h.ClusterSize * h.ClusterSize;
        if (!TableOffsetValid(h.L1TableOffset, h.ClusterSize, h.TableSize, (ulong)h.HeaderSize * h.ClusterSize, fileEnd))
            throw new BlockException(Errno.EINVAL, "QED table offset is invalid");
        if (h.HasBackingFile)
        {
            if ((ulong)h.BackingFilenameOffset + h.BackingFilenameSize > (ulong)h.HeaderSize * h.ClusterSize
                || h.BackingFilenameSize > QedLayout.MaxBackingFileName || (ulong)h.BackingFilenameOffset + h.BackingFilenameSize > (ulong)fileLength)
                throw new BlockException(Errno.EINVAL, "QED backing filename offset is invalid");
        }
    }

    /// <summary>
    /// QEMU's test of a table offset: its first and last cluster must be valid cluster offsets. With one-cluster
    /// tables the two coincide and QEMU's overflow guard (last &lt;= first) refuses every table, so QEMU 7.2
    /// cannot open the table_size=1 images it creates; we refuse them alike rather than write what it cannot read.
    /// </summary>
    private static bool TableOffsetValid(ulong offset, uint clusterSize, uint tableSize, ulong headerBytes, long fileEnd)
    {
        ulong last = unchecked(offset + ((ulong)(tableSize - 1) * clusterSize));
        return last > offset && ClusterOffsetValid(offset, clusterSize, headerBytes, fileEnd) && ClusterOffsetValid(last, clusterSize, headerBytes, fileEnd);
    }

    private static bool ClusterOffsetValid(ulong offset, uint clusterSize, ulong headerBytes, long fileEnd) =>
        offset % clusterSize == 0 && offset >= headerBytes && offset < (ulong)fileEnd;

    internal bool TableOffsetValid(ulong offset) =>
        TableOffsetValid(offset, _header.ClusterSize, _header.TableSize, (ulong)HeaderBytes, _fileEnd);

    internal bool ClusterOffsetValid(ulong offset) => ClusterOffsetValid(offset, _header.ClusterSize, (ulong)HeaderBytes, _fileEnd);

    private long HeaderBytes => (long)_header.HeaderSize * _clusterSize;

    internal int Entries => _entries;

    internal ulong L1Entry(int i) => _l1[i];

    private enum Kind
    {
        Unallocated,
        Zero,
        Data,
    }

    /// <summary>The L2 entry for guest cluster <paramref name="cluster"/>, loading its table; 0 when there is no L2 table. Caller holds the lock.</summary>
    private async ValueTask<ulong> LookupLockedAsync(long cluster, CancellationToken ct)
    {
        int l1Index = (int)(cluster / _entries);
        ulong l2Offset = _l1[l1Index];
        if (l2Offset == 0)
            return 0;
        var table = await LoadL2LockedAsync(l1Index, l2Offset, ct).ConfigureAwait(false);
        return table[(int)(cluster % _entries)];
    }

    private async ValueTask<ulong[]> LoadL2LockedAsync(int l1Index, ulong l2Offset, CancellationToken ct)
    {
        if (_l2.TryGetValue(l2Offset, out var cached))
            return cached;
        if (!TableOffsetValid(l2Offset))
            throw new ImageCorruptException(FileName, "L1 entry", (long)_header.L1TableOffset + (l1Index * sizeof(ulong)), $"L2 table offset 0x{l2Offset:x} is not a cluster-aligned table inside the file");
        byte[] raw = ArrayPool<byte>.Shared.Rent(_tableBytes);
        try
        {
            _debug.Raise(BlkdebugEvent.L2Load);
            await _file.ReadAsync((long)l2Offset, raw.AsMemory(0, _tableBytes), ct).ConfigureAwait(false);
            var table = new ulong[_entries];
            for (int i = 0; i < table.Length; i++)
                table[i] = BinaryPrimitives.ReadUInt64LittleEndian(raw.AsSpan(i * sizeof(ulong)));
            TrimCacheLocked();
            _l2[l2Offset] = table;
            return table;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(raw);
        }
    }

    /// <summary>Drops every clean table once the cache holds more than its budget; dirty ones wait for the flush.</summary>
    private void TrimCacheLocked()
    {
        if ((long)_l2.Count * _tableBytes <= CleanCacheBytes)
            return;
        foreach (var key in _l2.Keys.ToArray())
        {
            if (!_dirtyL2.Contains(key))
                _l2.Remove(key);
        }
    }

    /// <summary>How a run of guest clusters from <paramref name="cluster"/> maps: its kind, the host offset of its first cluster, and how many follow alike.</summary>
    private async ValueTask<(Kind Kind, long Host, long Count)> MapAsync(long cluster, long maxCount, CancellationToken ct)
    {
        await _lock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            // One answer covers at most this many clusters, so a status query over a huge image stays short.
            maxCount = Math.Min(maxCount, MaxRunClusters);
            var (kind, host) = Classify(cluster, await LookupLockedAsync(cluster, ct).ConfigureAwait(false));
            long n = _l1[(int)(cluster / _entries)] == 0 ? _entries - (cluster % _entries) : 1;
            while (n < maxCount)
            {
                long c = cluster + n;
                // A whole range without an L2 table is unallocated in one step.
                if (c % _entries == 0 && _l1[(int)(c / _entries)] == 0)
                {
                    if (kind != Kind.Unallocated)
                        break;
                    n += _entries;
                    continue;
                }

                var (k, h) = Classify(c, await LookupLockedAsync(c, ct).ConfigureAwait(false));
                if (k != kind || (kind == Kind.Data && h != host + (n * _clusterSize)))
                    break;
                n++;
            }

            return (kind, host, Math.Min(n, maxCount));
        }
        finally
        {
            _lock.Release();
        }
    }

    private (Kind Kind, long Host) Classify(long cluster, ulong entry)
    {
        if (entry == 0)
            return (Kind.Unallocated, 0);
        if (entry == QedLayout.ZeroCluster)
            return (Kind.Zero, 0);
        if (!ClusterOffsetValid(entry))
            throw new ImageCorruptException(FileName, "L2 entry", -1, $"guest cluster {cluster} points at 0x{entry:x}, not a cluster-aligned offset inside the file");
        return (Kind.Data, (long)entry);
    }

    protected override async ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        while (buffer.Length > 0)
        {
            long cluster = offset / _clusterSize;
            int inCluster = (int)(offset % _clusterSize);
            long span = (long)inCluster + buffer.Length;
            var (kind, host, count) = await MapAsync(cluster, (span + _clusterSize - 1) / _clusterSize, cancellationToken).ConfigureAwait(false);
            int n = (int)Math.Min(buffer.Length, (count * _clusterSize) - inCluster);
            var chunk = buffer[..n];
            switch (kind)
            {
                case Kind.Data:
                    _debug.Raise(BlkdebugEvent.ReadAio);
                    await ReadFileAsync(host + inCluster, chunk, cancellationToken).ConfigureAwait(false);
                    break;
                case Kind.Unallocated:
                    _debug.Raise(BlkdebugEvent.ReadBackingAio);
                    await ReadBackingAsync(offset, chunk, cancellationToken).ConfigureAwait(false);
                    break;
                default:
                    chunk.Span.Clear();
                    break;
            }

            offset += n;
            buffer = buffer[n..];
        }
    }

    /// <summary>Reads the file, with zeros past its end (a cluster handed out but not yet written).</summary>
    private async ValueTask ReadFileAsync(long at, Memory<byte> buffer, CancellationToken ct)
    {
        long have = Math.Clamp(_file.Length - at, 0, buffer.Length);
        if (have > 0)
            await _file.ReadAsync(at, buffer[..(int)have], ct).ConfigureAwait(false);
        buffer.Span[(int)have..].Clear();
    }

    /// <summary>Unallocated clusters come from the backing file up to its length, zeros after it (and without one).</summary>
    private async ValueTask ReadBackingAsync(long offset, Memory<byte> chunk, CancellationToken ct)
    {
        var backing = Backing;
        long avail = backing == null ? 0 : Math.Clamp(backing.Length - offset, 0, chunk.Length);
        if (avail > 0)
            await backing!.ReadAsync(offset, chunk[..(int)avail], ct).ConfigureAwait(false);
        chunk.Span[(int)avail..].Clear();
    }

    protected override async ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags, CancellationToken cancellationToken)
    {
        while (data.Length > 0)
        {
            long cluster = offset / _clusterSize;
            int inCluster = (int)(offset % _clusterSize);
            long span = (long)inCluster + data.Length;
            var (kind, host, count) = await MapAsync(cluster, (span + _clusterSize - 1) / _clusterSize, cancellationToken).ConfigureAwait(false);
            int n = kind == Kind.Data ? (int)Math.Min(data.Length, (count * _clusterSize) - inCluster) : Math.Min(data.Length, _clusterSize - inCluster);
            if (kind == Kind.Data)
            {
                _debug.Raise(BlkdebugEvent.WriteAio);
                await _file.WriteAsync(host + inCluster, data[..n], flags & RequestFlags.Fua, cancellationToken).ConfigureAwait(false);
            }
            else
                await AllocateAsync(cluster, inCluster, data[..n], cancellationToken).ConfigureAwait(false);
            offset += n;
            data = data[n..];
        }

        if ((flags & RequestFlags.Fua) != 0)
            await FlushCoreAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Gives guest cluster <paramref name="cluster"/> a new data cluster at the end of the file holding
    /// <paramref name="data"/> at <paramref name="inCluster"/>, the rest from the backing file (an unallocated
    /// cluster) or zeros (a zero cluster, or no backing file). The data is written now; the L2 entry (and a new
    /// L2 table, also at the file end) only in memory, for the flush to write after the data is durable.
    /// </summary>
    private async ValueTask AllocateAsync(long cluster, int inCluster, ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        await _lock.WaitAsync(ct).ConfigureAwait(false);
        byte[]? whole = null;
        try
        {
            var (kind, host) = Classify(cluster, await LookupLockedAsync(cluster, ct).ConfigureAwait(false));
            if (kind == Kind.Data)
            {
                // Another write allocated it while this one waited.
                _debug.Raise(BlkdebugEvent.WriteAio);
                await _file.WriteAsync(host + inCluster, data, RequestFlags.None, ct).ConfigureAwait(false);
                return;
            }

            await MarkNeedCheckLockedAsync(ct).ConfigureAwait(false);
            whole = ArrayPool<byte>.Shared.Rent(_clusterSize);
            var buf = whole.AsMemory(0, _clusterSize);
            long guest = cluster * _clusterSize;
            bool cow = kind == Kind.Unallocated && Backing != null;
            if (cow)
                _debug.Raise(BlkdebugEvent.CowRead);
            if (kind == Kind.Unallocated)
                await ReadBackingAsync(guest, buf, ct).ConfigureAwait(false);
            else
                buf.Span.Clear();
            data.CopyTo(buf[inCluster..]);
            // The last cluster of an image whose size is not whole clusters is still written whole, as QEMU does.
            long at = _fileEnd;
            _fileEnd += _clusterSize;
            // One write carries both the copied backing data and the guest's (QEMU writes them apart).
            _debug.Raise(cow ? BlkdebugEvent.CowWrite : BlkdebugEvent.WriteAio);
            await _file.WriteAsync(at, buf, RequestFlags.None, ct).ConfigureAwait(false);
            await SetEntryLockedAsync(cluster, (ulong)at, ct).ConfigureAwait(false);
        }
        finally
        {
            if (whole != null)
                ArrayPool<byte>.Shared.Return(whole);
            _lock.Release();
        }
    }

    /// <summary>Sets an L2 entry in memory, appending a new L2 table when the L1 entry has none. Caller holds the lock.</summary>
    private async ValueTask SetEntryLockedAsync(long cluster, ulong value, CancellationToken ct)
    {
        int l1Index = (int)(cluster / _entries);
        ulong l2Offset = _l1[l1Index];
        ulong[] table;
        if (l2Offset == 0)
        {
            l2Offset = (ulong)_fileEnd;
            _fileEnd += _tableBytes;
            table = new ulong[_entries];
            TrimCacheLocked();
            _l2[l2Offset] = table;
            _l1[l1Index] = l2Offset;
            _l1Dirty = true;
        }
        else
        {
            table = await LoadL2LockedAsync(l1Index, l2Offset, ct).ConfigureAwait(false);
        }

        table[(int)(cluster % _entries)] = value;
        _dirtyL2.Add(l2Offset);
    }

    /// <summary>
    /// Sets the need-check bit, durably, before the first metadata change: a crash after it leaves an image
    /// that the next writer checks, as QEMU's own driver would. Caller holds the lock.
    /// </summary>
    private async ValueTask MarkNeedCheckLockedAsync(CancellationToken ct)
    {
        if (_header.NeedCheck)
            return;
        _header = _header with { Features = _header.Features | QedLayout.FeatureNeedCheck };
        await WriteHeaderLockedAsync(ct).ConfigureAwait(false);
    }

    private async ValueTask WriteHeaderLockedAsync(CancellationToken ct)
    {
        byte[] head = new byte[QedHeader.Size];
        _header.Write(head);
        await _file.WriteAsync(0, head, RequestFlags.None, ct).ConfigureAwait(false);
        await _file.FlushAsync(ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Zeros: an allocated cluster is zeroed in place; a whole cluster that is not becomes a zero entry (as
    /// QEMU makes it); part of one reads as zeros already unless a backing file shows through, which a
    /// written zero buffer then covers.
    /// </summary>
    protected override async ValueTask WriteZeroesCoreAsync(long offset, long length, RequestFlags flags, CancellationToken cancellationToken)
    {
        while (length > 0)
        {
            long cluster = offset / _clusterSize;
            long inCluster = offset % _clusterSize;
            var (kind, host, count) = await MapAsync(cluster, 1, cancellationToken).ConfigureAwait(false);
            long n = Math.Min(length, (count * _clusterSize) - inCluster);
            bool whole = inCluster == 0 && n == _clusterSize;
            if (kind == Kind.Data)
            {
                await _file.WriteZeroesAsync(host + inCluster, n, flags & (RequestFlags.NoFallback | RequestFlags.Fua), cancellationToken).ConfigureAwait(false);
            }
            else if (kind == Kind.Unallocated && whole)
            {
                await SetZeroEntryAsync(cluster, cancellationToken).ConfigureAwait(false);
            }
            else if (kind == Kind.Unallocated && Backing != null)
            {
                byte[] zeros = new byte[n];
                await AllocateAsync(cluster, (int)inCluster, zeros, cancellationToken).ConfigureAwait(false);
            }

            offset += n;
            length -= n;
        }
    }

    private async ValueTask SetZeroEntryAsync(long cluster, CancellationToken ct)
    {
        await _lock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (await LookupLockedAsync(cluster, ct).ConfigureAwait(false) != 0)
                return;
            await MarkNeedCheckLockedAsync(ct).ConfigureAwait(false);
            await SetEntryLockedAsync(cluster, QedLayout.ZeroCluster, ct).ConfigureAwait(false);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>
    /// Data first, then the tables that point at it: the file is flushed, the changed L2 tables written and
    /// flushed, then the L1 table written and flushed. A crash at any point leaves tables that point only at
    /// written clusters (at worst leaked ones, which the check counts).
    /// </summary>
    protected override async ValueTask FlushCoreAsync(CancellationToken cancellationToken)
    {
        _debug.Raise(BlkdebugEvent.FlushToOs);
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await FlushTablesLockedAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _lock.Release();
        }
    }

    private async ValueTask FlushTablesLockedAsync(CancellationToken ct)
    {
        _debug.Raise(BlkdebugEvent.FlushToDisk);
        await _file.FlushAsync(ct).ConfigureAwait(false);
        if (_dirtyL2.Count == 0 && !_l1Dirty)
            return;
        byte[] raw = ArrayPool<byte>.Shared.Rent(_tableBytes);
        try
        {
            foreach (ulong at in _dirtyL2.Order())
            {
                Encode(_l2[at], raw);
                _debug.Raise(BlkdebugEvent.L2Update);
                await _file.WriteAsync((long)at, raw.AsMemory(0, _tableBytes), RequestFlags.None, ct).ConfigureAwait(false);
            }

            _dirtyL2.Clear();
            _debug.Raise(BlkdebugEvent.FlushToDisk);
            await _file.FlushAsync(ct).ConfigureAwait(false);
            if (_l1Dirty)
            {
                Encode(_l1, raw);
                _debug.Raise(BlkdebugEvent.L1Update);
                await _file.WriteAsync((long)_header.L1TableOffset, raw.AsMemory(0, _tableBytes), RequestFlags.None, ct).ConfigureAwait(false);
                _l1Dirty = false;
                _debug.Raise(BlkdebugEvent.FlushToDisk);
                await _file.FlushAsync(ct).ConfigureAwait(false);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(raw);
        }
    }

    private static void Encode(ulong[] table, byte[] into)
    {
        for (int i = 0; i < table.Length; i++)
            BinaryPrimitives.WriteUInt64LittleEndian(into.AsSpan(i * sizeof(ulong)), table[i]);
    }

    protected override async ValueTask<BlockStatus> BlockStatusCoreAsync(long offset, long length, CancellationToken cancellationToken)
    {
        long cluster = offset / _clusterSize;
        long inCluster = offset % _clusterSize;
        long maxCount = (inCluster + length + _clusterSize - 1) / _clusterSize;
        var (kind, host, count) = await MapAsync(cluster, maxCount, cancellationToken).ConfigureAwait(false);
        long n = Math.Min(length, (count * _clusterSize) - inCluster);
        return kind switch
        {
            // Not this layer's: the backing file answers, or zeros without one (as QEMU reports it).
            Kind.Unallocated => new BlockStatus(Backing == null ? BlockStatusFlags.Zero : BlockStatusFlags.None, n),
            Kind.Zero => new BlockStatus(BlockStatusFlags.Zero | BlockStatusFlags.Allocated, n),
            _ => new BlockStatus(BlockStatusFlags.Data | BlockStatusFlags.Allocated | BlockStatusFlags.OffsetValid, n, host + inCluster, _file),
        };
    }

    public override async ValueTask<ImageInfo> GetImageInfoAsync(CancellationToken cancellationToken = default)
    {
        var info = await base.GetImageInfoAsync(cancellationToken).ConfigureAwait(false);
        info.ClusterSize = _clusterSize;
        return info;
    }

    /// <summary>QEMU grows a QED image by rewriting image_size; it refuses to shrink, and sizes the tables cannot address.</summary>
    protected override async ValueTask TruncateCoreAsync(long size, CancellationToken cancellationToken)
    {
        if (size < 0 || !QedLayout.ImageSizeValid((ulong)size, _header.ClusterSize, _header.TableSize))
            throw new BlockException(Errno.EINVAL, "Invalid image size specified");
        if ((ulong)size < _header.ImageSize)
            throw new BlockException(Errno.EOPNOTSUPP, "Shrinking images is currently not supported");
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            _header = _header with { ImageSize = (ulong)size };
            await WriteHeaderLockedAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Rewrites the backing name after the header; only raw is recordable as a format.</summary>
    public async ValueTask ChangeBackingFileAsync(string? backingFile, string? backingFormat, CancellationToken cancellationToken = default)
    {
        if (ReadOnly)
            throw new BlockException(Errno.EPERM, $"Image '{FileName}' is read-only");
        byte[] name = backingFile != null ? Encoding.UTF8.GetBytes(backingFile) : [];
        if (QedHeader.Size + name.Length > HeaderBytes || name.Length > QedLayout.MaxBackingFileName)
            throw new BlockException(Errno.EINVAL, "Backing file name does not fit in the QED header");
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ulong features = _header.Features & ~(QedLayout.FeatureBackingFile | QedLayout.FeatureBackingFormatNoProbe);
            if (backingFile != null)
                features |= QedLayout.FeatureBackingFile | (backingFormat == "raw" ? QedLayout.FeatureBackingFormatNoProbe : 0);
            _header = _header with
            {
                Features = features,
                BackingFilenameOffset = backingFile != null ? QedHeader.Size : 0u,
                BackingFilenameSize = (uint)name.Length,
            };
            // Header and name in one write, so the name and its length change together.
            byte[] head = new byte[QedHeader.Size + name.Length];
            _header.Write(head);
            name.CopyTo(head.AsSpan(QedHeader.Size));
            await _file.WriteAsync(0, head, RequestFlags.None, cancellationToken).ConfigureAwait(false);
            await _file.FlushAsync(cancellationToken).ConfigureAwait(false);
            _backingName = backingFile;
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>A clean close: tables flushed, then the need-check bit cleared, as QEMU closes an image.</summary>
    protected override async ValueTask CloseCoreAsync()
    {
        try
        {
            if (!ReadOnly && _header.NeedCheck)
            {
                await _lock.WaitAsync().ConfigureAwait(false);
                try
                {
                    await FlushTablesLockedAsync(CancellationToken.None).ConfigureAwait(false);
                    _header = _header with { Features = _header.Features & ~QedLayout.FeatureNeedCheck };
                    await WriteHeaderLockedAsync(CancellationToken.None).ConfigureAwait(false);
                }
                catch (BlockException)
                {
                    // The storage failed the last write-back: closing still lets go of the file. The need-check
                    // bit stays set on disk, so the next writable open repairs what did not reach it.
                }
                finally
                {
                    _lock.Release();
                }
            }
        }
        finally
        {
            _lock.Dispose();
        }
    }
}
