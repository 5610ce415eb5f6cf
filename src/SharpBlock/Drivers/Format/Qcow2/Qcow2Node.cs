using System.Buffers.Binary;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Io;

namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>
/// The qcow2 format (versions 2 and 3). L1 and the refcount table live in memory; L2 tables and refcount
/// blocks in bounded caches. One async lock guards metadata; data I/O runs outside it; a range lock
/// serialises requests that allocate or free the same guest clusters (in cluster units).
/// </summary>
/// <remarks>
/// Crash safety comes from write-back order, not from journaling: a refcount increment reaches the disk
/// before the L2 entry that uses the cluster, an L2 table before the L1 entry that points at it, and a
/// refcount decrement only after the table that dropped the reference. A crash therefore leaks clusters
/// at worst and never leaves a cluster with two owners.
/// </remarks>
public sealed partial class Qcow2Node : BlockNode
{
    private readonly BlockNode _file;
    private readonly SemaphoreSlim _meta = new(1, 1);
    private readonly RangeLock _ranges = new();
    private readonly Qcow2Cache _l2Cache;
    private readonly Qcow2Cache _refCache;

    private Qcow2Header _header;
    private readonly int _clusterBits;
    private readonly int _clusterSize;
    private readonly int _l2Bits;
    private int _refOrder;
    private int _refBlockBits;
    private long _size;

    private ulong[] _l1;
    private long _l1Offset;
    private bool _l1Dirty;

    private ulong[] _refTable;
    private long _refTableOffset;

    private List<Qcow2Snapshot> _snapshots = [];
    private readonly List<Qcow2FeatureName> _featureNames = [];
    private string? _backingName;
    private string? _backingFormat;
    private long _freeHint;
    private long _compressedCursor;
    private readonly Dictionary<long, long> _pendingFrees = [];

    /// <summary>Snapshot table entries that run past the end of the file (read as zeros; img check reports them).</summary>
    private readonly List<int> _incompleteSnapshots = [];
    private bool _headerDirtyBitSet;

    private Qcow2Node(BlockNode file, NodeSettings settings, Qcow2Header header)
        : base(settings)
    {
        _file = file;
        _header = header;
        _clusterBits = (int)header.ClusterBits;
        _clusterSize = 1 << _clusterBits;
        _l2Bits = _clusterBits - 3;
        _refOrder = (int)header.RefcountOrder;
        _refBlockBits = _clusterBits + 3 - _refOrder;
        // QEMU counts a disk in whole 512-byte sectors and drops a partial one from the header's size.
        _size = (long)(header.Size64 & ~511UL);
        _l1 = [];
        _refTable = [];
        // Enough L2 tables to map 32 MiB of guest data (QEMU's default for 64k clusters is 1 MiB of L2),
        // at least 16 tables; refcount blocks a quarter of that.
        int l2Tables = Math.Max(16, (int)Math.Min(256, (32L << 20) >> (_clusterBits + _l2Bits - 3)));
        _l2Cache = new Qcow2Cache(Math.Max(16, l2Tables), _clusterSize);
        _refCache = new Qcow2Cache(Math.Max(8, l2Tables / 4), _clusterSize);
        _l2Cache.WriteBack = WriteBackL2Async;
        _refCache.WriteBack = WriteBackRefBlockAsync;
        AttachChild(file, ChildRole.File, "file");
        AttachDebugEvents();
    }

    public override string DriverName => "qcow2";

    public override long Length => Volatile.Read(ref _size);

    public int ClusterSize => _clusterSize;

    public int Version => (int)_header.Version;

    public string Compat => _header.Version >= 3 ? "1.1" : "0.10";

    public int RefcountBits => 1 << _refOrder;

    public bool LazyRefcounts => (_header.CompatibleFeatures & Qcow2Layout.CompatLazyRefcounts) != 0;

    public bool IsDirty => (_header.IncompatibleFeatures & Qcow2Layout.IncompatDirty) != 0;

    public bool IsCorrupt => (_header.IncompatibleFeatures & Qcow2Layout.IncompatCorrupt) != 0;

    public override string? BackingFileName => _backingName;

    public override string? BackingFormat => _backingFormat;

    public IReadOnlyList<Qcow2Snapshot> Snapshots => _snapshots;

    public IReadOnlyList<Qcow2FeatureName> FeatureNames => _featureNames;

    /// <summary>Whether a guest discard also punches the freed host clusters (pass-discard-request).</summary>
    public bool PassDiscardRequest { get; internal set; } = true;

    /// <summary>Whether clusters freed by snapshot operations are punched (pass-discard-snapshot).</summary>
    public bool PassDiscardSnapshot { get; internal set; } = true;

    /// <summary>Whether clusters freed otherwise (copy-on-write, rewrites) are punched (pass-discard-other).</summary>
    public bool PassDiscardOther { get; internal set; }

    /// <summary>The lazy-refcounts open option, when given; the header decides otherwise.</summary>
    internal bool? LazyRefcountsOverride { get; set; }

    private bool UseLazyRefcounts => LazyRefcountsOverride ?? LazyRefcounts;

    internal Qcow2Node WithDiscardOptions(bool? request, bool? snapshot, bool? other)
    {
        PassDiscardRequest = request ?? PassDiscardRequest;
        PassDiscardSnapshot = snapshot ?? PassDiscardSnapshot;
        PassDiscardOther = other ?? PassDiscardOther;
        return this;
    }

    private string FileName => _file.Filename;

    private bool V3 => _header.Version >= 3;

    private long L2Coverage => 1L << (_clusterBits + _l2Bits);

    private int L2Entries => 1 << _l2Bits;

    private long RefBlockEntries => 1L << _refBlockBits;

    internal void AttachBacking(BlockNode backing) => AttachChild(backing, ChildRole.Backing, "backing");

    /// <summary>Opens an image from its file node: validates the header and tables against the file and QEMU's limits.</summary>
    public static async ValueTask<Qcow2Node> OpenAsync(BlockNode file, NodeSettings settings, CancellationToken cancellationToken = default)
    {
        // Metadata lives in the file: a second writer (another process) would corrupt what we read.
        file.RefuseOtherWriters();
        string name = file.Filename;
        long fileLength = file.Length;
        // A file too short for a header, or without the magic, is not a qcow2 image at all (not a damaged one).
        if (fileLength < Qcow2Layout.V2HeaderSize)
            throw new BlockException(Errno.EINVAL, "Image is not in qcow2 format");
        byte[] first = new byte[Math.Min(1 << Qcow2Layout.MaxClusterBits, Math.Max(Qcow2Layout.V3HeaderSize, fileLength))];
        await file.ReadAsync(0, first.AsMemory(0, (int)Math.Min(first.Length, fileLength)), cancellationToken).ConfigureAwait(false);
        var h = Qcow2Header.Read(first);
        if (h.Magic != Qcow2Layout.Magic)
            throw new BlockException(Errno.EINVAL, "Image is not in qcow2 format");
        if (h.Version is < 2 or > 3)
            throw new BlockException(Errno.EOPNOTSUPP, $"Unsupported qcow2 version {h.Version}");
        if (h.ClusterBits is < Qcow2Layout.MinClusterBits or > Qcow2Layout.MaxClusterBits)
            throw new ImageCorruptException(name, "cluster_bits", Qcow2Header.ClusterBitsOffset, $"unsupported cluster size: 2^{h.ClusterBits}");
        int cs = 1 << (int)h.ClusterBits;
        if (h.Version >= 3)
        {
            if (h.HeaderLength < Qcow2Layout.V3HeaderSize)
                throw new ImageCorruptException(name, "header_length", Qcow2Header.HeaderLengthOffset, "qcow2 header too short");
            if (h.HeaderLength > cs)
                throw new ImageCorruptException(name, "header_length", Qcow2Header.HeaderLengthOffset, "qcow2 header exceeds cluster size");
            if (h.RefcountOrder > 6)
                throw new ImageCorruptException(name, "refcount_order", Qcow2Header.RefcountOrderOffset, "reference count entry width too large; may not exceed 64 bits");
        }

        CheckCryptMethod(name, h.CryptMethod);
        if (h.Size64 > long.MaxValue / 2)
            throw new ImageCorruptException(name, "size", Qcow2Header.SizeOffset, "image size too large");

        var node = new Qcow2Node(file, settings, h);
        try
        {
            await node.LoadAsync(first.AsMemory(0, (int)Math.Min(cs, fileLength)), fileLength, cancellationToken).ConfigureAwait(false);
            return node;
        }
        catch
        {
            await node.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private ImageCorruptException Corrupt(string field, long offset, string problem) => new(FileName, field, offset, problem);

    /// <summary>Checks an offset/length against the file: inside it, cluster aligned.</summary>
    private void CheckTable(string field, long fieldOffset, ulong offset, ulong bytes, long fileLength)
    {
        if ((offset & (ulong)(_clusterSize - 1)) != 0)
            throw Corrupt(field, fieldOffset, $"offset 0x{offset:x} is not aligned to the cluster size");
        if (offset > (ulong)fileLength || bytes > (ulong)fileLength - offset)
            throw Corrupt(field, fieldOffset, $"table at 0x{offset:x} ({bytes} bytes) lies outside the file ({fileLength} bytes)");
    }

    private async ValueTask LoadAsync(ReadOnlyMemory<byte> firstCluster, long fileLength, CancellationToken ct)
    {
        var h = _header;
        await ParseExtensionsAsync(firstCluster, ct).ConfigureAwait(false);

        ulong unknown = h.IncompatibleFeatures & ~Qcow2Layout.IncompatSupported;
        if ((unknown & Qcow2Layout.IncompatCompression) != 0 && h.CompressionType == 0)
            unknown &= ~Qcow2Layout.IncompatCompression;
        if (unknown != 0)
            throw new BlockException(Errno.EOPNOTSUPP, "Unsupported qcow2 feature(s): " + DescribeFeatures(unknown));
        if (h.CompressionType != 0)
            throw new BlockException(Errno.EOPNOTSUPP, $"Unsupported compression type {h.CompressionType}");
        if (IsCorrupt && !ReadOnly)
            throw new BlockException(Errno.EACCES, "qcow2: Image is corrupt; cannot be opened read/write");

        // Backing file name.
        if (h.BackingFileOffset != 0)
        {
            if (h.BackingFileSize > Qcow2Layout.MaxBackingFileName)
                throw Corrupt("backing_file_size", Qcow2Header.BackingFileSizeOffset, "backing file name too long");
            if (h.BackingFileOffset > (ulong)firstCluster.Length || h.BackingFileSize > (ulong)firstCluster.Length - h.BackingFileOffset)
                throw Corrupt("backing_file_offset", Qcow2Header.BackingFileOffsetOffset, "backing file name lies outside the first cluster");
            _backingName = System.Text.Encoding.UTF8.GetString(firstCluster.Span.Slice((int)h.BackingFileOffset, (int)h.BackingFileSize));
            // No file system takes a name with a NUL; refusing it here keeps it from reaching a path API.
            if (_backingName.Contains('\0', StringComparison.Ordinal))
                throw Corrupt("backing_file_offset", Qcow2Header.BackingFileOffsetOffset, "backing file name contains a NUL byte");
        }

        // L1 table.
        ulong l1Bytes = (ulong)h.L1Size * 8;
        if (l1Bytes > Qcow2Layout.MaxL1Bytes)
            throw Corrupt("l1_size", Qcow2Header.L1SizeOffset, "active L1 table too large");
        long needed = L1EntriesFor(_size);
        if (h.L1Size < needed)
            throw Corrupt("l1_size", Qcow2Header.L1SizeOffset, $"L1 table is too small ({h.L1Size} entries for {needed} needed)");
        if (h.L1Size > 0)
            CheckTable("l1_table_offset", Qcow2Header.L1TableOffsetOffset, h.L1TableOffset, l1Bytes, long.MaxValue / 2);
        _l1Offset = (long)h.L1TableOffset;
        // Entries with reserved bits set are used for their offset, as QEMU uses them; img check reports them.
        _l1 = await ReadTableAsync(_l1Offset, (int)h.L1Size, ct).ConfigureAwait(false);

        // Refcount table. Like the L1 table, one that lies past the end of the file (a cut image) reads as
        // zeros there, as QEMU reads it; the overlap checks stop what an empty table would let through.
        ulong rtBytes = (ulong)h.RefcountTableClusters << _clusterBits;
        if (rtBytes > Qcow2Layout.MaxRefcountTableBytes)
            throw Corrupt("refcount_table_clusters", Qcow2Header.RefcountTableClustersOffset, "reference count table too large");
        if (h.RefcountTableClusters == 0)
            throw Corrupt("refcount_table_clusters", Qcow2Header.RefcountTableClustersOffset, "image has no reference count table");
        CheckTable("refcount_table_offset", Qcow2Header.RefcountTableOffsetOffset, h.RefcountTableOffset, rtBytes, long.MaxValue / 2);
        _refTableOffset = (long)h.RefcountTableOffset;
        Debug(Schema.BlkdebugEvent.ReftableLoad);
        _refTable = await ReadTableAsync(_refTableOffset, (int)(rtBytes / 8), ct).ConfigureAwait(false);

        // Snapshots.
        if (h.NbSnapshots > Qcow2Layout.MaxSnapshots)
            throw Corrupt("nb_snapshots", Qcow2Header.NbSnapshotsOffset, "too many snapshots");
        // A table that runs past the end of the file reads as zeros there, as QEMU reads it (img check calls
        // those entries incomplete); only its start must be sane.
        if (h.NbSnapshots > 0)
            CheckTable("snapshots_offset", Qcow2Header.SnapshotsOffsetOffset, h.SnapshotsOffset, 0, fileLength);
        _snapshots = await ReadSnapshotsAsync(fileLength, ct).ConfigureAwait(false);
        await LoadBitmapsAsync(fileLength, ct).ConfigureAwait(false);

        if (!ReadOnly)
            await PrepareForWritingAsync(ct).ConfigureAwait(false);

        _freeHint = 0;
    }

    /// <summary>
    /// What a read-write open (or a reopen from read-only) does before the first write: drops autoclear
    /// features we do not maintain and rebuilds the refcounts of an image left dirty. Caller holds _meta
    /// or is still opening.
    /// </summary>
    private async ValueTask PrepareForWritingAsync(CancellationToken ct)
    {
        // The bitmaps bit stays only while it vouches for a directory we keep up to date.
        ulong supported = _bitmapsExtension != null ? Qcow2Layout.AutoclearSupported : 0;
        if ((_header.AutoclearFeatures & ~supported) != 0)
        {
            // A feature we do not maintain (raw data file) would go stale under our writes.
            _header = _header with { AutoclearFeatures = _header.AutoclearFeatures & supported };
            await WriteHeaderFieldAsync(Qcow2Header.AutoclearFeaturesOffset, _header.AutoclearFeatures, ct).ConfigureAwait(false);
            await _file.FlushAsync(ct).ConfigureAwait(false);
        }

        if (IsDirty)
        {
            await RepairAsync(ImageCheckMode.All, null, ct).ConfigureAwait(false);
            await SetDirtyBitAsync(false, ct).ConfigureAwait(false);
        }

        await MarkBitmapsInUseAsync(ct).ConfigureAwait(false);
    }

    internal long L1EntriesFor(long size) => (size + L2Coverage - 1) / L2Coverage;

    private async ValueTask<ulong[]> ReadTableAsync(long offset, int entries, CancellationToken ct)
    {
        var table = new ulong[entries];
        if (entries == 0)
            return table;
        byte[] buf = new byte[entries * 8];
        await _file.ReadAsync(offset, buf, ct).ConfigureAwait(false);
        for (int i = 0; i < entries; i++)
            table[i] = BinaryPrimitives.ReadUInt64BigEndian(buf.AsSpan(i * 8));
        return table;
    }

    private async ValueTask ParseExtensionsAsync(ReadOnlyMemory<byte> first, CancellationToken ct)
    {
        var h = _header;
        long pos = h.Version >= 3 ? h.HeaderLength : Qcow2Layout.V2HeaderSize;
        long end = first.Length;
        if (h.BackingFileOffset != 0 && h.BackingFileOffset < (ulong)end)
            end = (long)h.BackingFileOffset;
        while (pos + Qcow2HeaderExtension.Size <= end)
        {
            var ext = Qcow2HeaderExtension.Read(first.Span[(int)pos..]);
            if (ext.Type == Qcow2Layout.ExtEnd)
                break;
            long dataPos = pos + Qcow2HeaderExtension.Size;
            if (ext.Length > end - dataPos)
                throw Corrupt("header extension length", pos + 4, $"extension 0x{ext.Type:x8} of {ext.Length} bytes runs past the end of the header area");
            var data = first.Span.Slice((int)dataPos, (int)ext.Length);
            switch (ext.Type)
            {
                case Qcow2Layout.ExtBackingFormat:
                    if (ext.Length > Qcow2Layout.MaxBackingFileName)
                        throw Corrupt("backing format extension", pos, "backing format name too long");
                    _backingFormat = System.Text.Encoding.UTF8.GetString(data);
                    break;
                case Qcow2Layout.ExtBitmaps:
                    ParseBitmapsExtension(data, pos);
                    break;
                case Qcow2Layout.ExtFeatureNameTable:
                    for (int i = 0; i + Qcow2FeatureName.Size <= data.Length; i += Qcow2FeatureName.Size)
                        _featureNames.Add(Qcow2FeatureName.Read(data[i..]));
                    break;
            }

            pos = dataPos + ((ext.Length + 7L) & ~7L);
        }

        await ValueTask.CompletedTask.ConfigureAwait(false);
        _ = ct;
    }

    private string DescribeFeatures(ulong bits)
    {
        var parts = new List<string>();
        for (int bit = 0; bit < 64; bit++)
        {
            ulong m = 1UL << bit;
            if ((bits & m) == 0)
                continue;
            foreach (var f in _featureNames)
            {
                if (f.Kind == Qcow2FeatureName.Incompatible && f.Bit == bit)
                {
                    parts.Add(f.Name);
                    bits &= ~m;
                    break;
                }
            }
        }

        if (bits != 0)
            parts.Add($"Unknown incompatible feature: {bits:x}");
        return string.Join(", ", parts);
    }

    private async ValueTask<List<Qcow2Snapshot>> ReadSnapshotsAsync(long fileLength, CancellationToken ct)
    {
        var list = new List<Qcow2Snapshot>((int)Math.Min(_header.NbSnapshots, 1024));
        long pos = (long)_header.SnapshotsOffset;
        long total = 0;
        byte[] fixedPart = new byte[Qcow2SnapshotHeader.Size];
        _incompleteSnapshots.Clear();
        for (uint i = 0; i < _header.NbSnapshots; i++)
        {
            await _file.ReadAsync(pos, fixedPart, ct).ConfigureAwait(false);
            var sh = Qcow2SnapshotHeader.Read(fixedPart);
            if (sh.ExtraDataSize > Qcow2Layout.MaxSnapshotExtraData)
                throw Corrupt("snapshot extra_data_size", pos + 36, "too much extra metadata in snapshot table entry");
            long varLen = (long)sh.ExtraDataSize + sh.IdSize + sh.NameSize;
            long entryLen = (Qcow2SnapshotHeader.Size + varLen + 7) & ~7L;
            if (pos + Qcow2SnapshotHeader.Size + varLen > fileLength)
                _incompleteSnapshots.Add((int)i);
            total += entryLen;
            if (total > 64L << 20)
                throw Corrupt("snapshot table", pos, "snapshot table too large");
            if ((ulong)sh.L1Size * 8 > Qcow2Layout.MaxL1Bytes)
                throw Corrupt("snapshot l1_size", pos + 8, "snapshot L1 table too large");
            if (sh.L1Size > 0 && !_incompleteSnapshots.Contains((int)i))
                CheckTable("snapshot l1_table_offset", pos, sh.L1TableOffset, (ulong)sh.L1Size * 8, fileLength);
            byte[] var = new byte[varLen];
            await _file.ReadAsync(pos + Qcow2SnapshotHeader.Size, var, ct).ConfigureAwait(false);
            var extra = var.AsSpan(0, (int)sh.ExtraDataSize);
            long disk = _size;
            long vmLarge = sh.VmStateSize;
            long icount = -1;
            if (extra.Length >= 8)
                vmLarge = BinaryPrimitives.ReadInt64BigEndian(extra);
            if (extra.Length >= 16)
                disk = BinaryPrimitives.ReadInt64BigEndian(extra[8..]);
            if (extra.Length >= 24)
                icount = BinaryPrimitives.ReadInt64BigEndian(extra[16..]);
            list.Add(new Qcow2Snapshot
            {
                L1TableOffset = (long)sh.L1TableOffset,
                L1Size = (int)sh.L1Size,
                Id = System.Text.Encoding.UTF8.GetString(var, (int)sh.ExtraDataSize, sh.IdSize),
                Name = System.Text.Encoding.UTF8.GetString(var, (int)sh.ExtraDataSize + sh.IdSize, sh.NameSize),
                DateSec = sh.DateSec,
                DateNsec = sh.DateNsec,
                VmClockNsec = (long)sh.VmClockNsec,
                VmStateSize = vmLarge,
                DiskSize = disk,
                Icount = icount,
                ExtraData = extra.ToArray(),
            });
            pos += entryLen;
        }

        return list;
    }

    private async ValueTask WriteHeaderFieldAsync(int offset, ulong value, CancellationToken ct)
    {
        byte[] b = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(b, value);
        await _file.WriteAsync(offset, b, RequestFlags.None, ct).ConfigureAwait(false);
    }

    private async ValueTask SetIncompatibleBitAsync(ulong bit, bool on, CancellationToken ct)
    {
        ulong v = on ? _header.IncompatibleFeatures | bit : _header.IncompatibleFeatures & ~bit;
        if (v == _header.IncompatibleFeatures || !V3)
            return;
        _header = _header with { IncompatibleFeatures = v };
        await WriteHeaderFieldAsync(Qcow2Header.IncompatibleFeaturesOffset, v, ct).ConfigureAwait(false);
        await _file.FlushAsync(ct).ConfigureAwait(false);
    }

    private async ValueTask SetDirtyBitAsync(bool on, CancellationToken ct)
    {
        await SetIncompatibleBitAsync(Qcow2Layout.IncompatDirty, on, ct).ConfigureAwait(false);
        _headerDirtyBitSet = on;
    }

    protected override async ValueTask CloseCoreAsync()
    {
        StopCacheCleaning();
        // A clean-interval tick that started before the timer stopped may still walk the caches; the lock
        // waits for it, and a later tick finds the lock disposed and gives up.
        await _meta.WaitAsync().ConfigureAwait(false);
        try
        {
            if (!ReadOnly && !_flushFailed && !IsCorrupt)
            {
                try
                {
                    await StoreBitmapsLockedAsync(CancellationToken.None).ConfigureAwait(false);
                }
                catch (BlockException)
                {
                    // The bitmaps stay marked in use on disk, so the next open reports them inconsistent:
                    // lost, never silently wrong.
                }
            }

            // A failed last flush leaves the dirty bit set, so the next open rebuilds what did not reach the disk.
            if (!ReadOnly && _headerDirtyBitSet && MetadataClean && !_flushFailed)
            {
                try
                {
                    await SetDirtyBitAsync(false, CancellationToken.None).ConfigureAwait(false);
                }
                catch (BlockException)
                {
                }
            }
        }
        finally
        {
            _meta.Release();
            _meta.Dispose();
        }
    }
}
