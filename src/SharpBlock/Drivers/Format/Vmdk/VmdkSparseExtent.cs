using SharpBlock.Schema;
using System.Buffers;
using System.Buffers.Binary;
using System.IO.Compression;
using System.Numerics;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Io;

namespace SharpBlock.Drivers.Format.Vmdk;

/// <summary>
/// A hosted sparse extent: a header, a grain directory (GD) of grain table (GT) sectors, the grain tables of
/// grain sectors, and the grains. The primary GD is the one read, as QEMU does; the redundant one is kept in step
/// on every table write. All members except the static opener need the node's metadata lock.
/// </summary>
internal sealed class VmdkSparseExtent : VmdkExtent
{
    /// <summary>Clean grain tables kept in memory before the cache starts dropping them (2 KiB each by default).</summary>
    private const int MaxCachedTables = 4096;

    private readonly uint[] _gd;
    private readonly uint[]? _rgd;
    private readonly long _gdOffset;
    private readonly long _rgdOffset;
    private readonly int _gtEntries;
    private readonly int _gtBytes;
    private readonly long _grainSectors;
    private readonly Dictionary<int, uint[]> _tables = [];
    private readonly HashSet<int> _dirtyTables = [];
    private readonly HashSet<int> _dirtyDirectory = [];
    private long _nextSector;
    private bool _streamAppended;

    private VmdkSparseExtent(BlockNode file, string type, long start, VmdkSparseHeader header, uint[] gd, uint[]? rgd)
        : base(file, type, start, (long)header.Capacity * VmdkLayout.SectorSize)
    {
        Header = header;
        _gd = gd;
        _rgd = rgd;
        _gdOffset = (long)header.GdOffset * VmdkLayout.SectorSize;
        _rgdOffset = (long)header.RgdOffset * VmdkLayout.SectorSize;
        _gtEntries = (int)header.GtesPerGt;
        _gtBytes = _gtEntries * 4;
        _grainSectors = (long)header.Granularity;
        long fileSectors = (file.Length + VmdkLayout.SectorSize - 1) / VmdkLayout.SectorSize;
        // New grains go after everything in the file, on a grain boundary, as QEMU places them.
        _nextSector = (fileSectors + _grainSectors - 1) / _grainSectors * _grainSectors;
    }

    public VmdkSparseHeader Header { get; }

    public override long GrainBytes => _grainSectors * VmdkLayout.SectorSize;

    public override bool Compressed => Header.Compressed;

    public bool HasMarkers => Header.HasMarkers;

    public bool ZeroGrains => Header.HasZeroGrains;

    public bool Dirty => _dirtyTables.Count > 0 || _dirtyDirectory.Count > 0;

    private string Name => File.Filename;

    private ImageCorruptException Corrupt(string field, long offset, string problem) => new(Name, field, offset, problem);

    /// <summary>Reads and checks the header of a sparse extent file (or its footer's copy) and its grain directories.</summary>
    public static async ValueTask<VmdkSparseExtent> OpenAsync(BlockNode file, string type, long start, bool writable, CancellationToken ct)
    {
        string name = file.Filename;
        long fileLength = file.Length;
        if (fileLength < VmdkSparseHeader.Size)
            throw new ImageCorruptException(name, "header", 0, "file is too short to hold a VMDK sparse header");
        byte[] sector = new byte[VmdkSparseHeader.Size];
        await file.ReadAsync(0, sector, ct).ConfigureAwait(false);
        var h = VmdkSparseHeader.Read(sector);
        if (h.Magic == VmdkLayout.Vmdk3Magic)
            throw new BlockException(Errno.EOPNOTSUPP, $"'{name}' is a VMDK3 (COWD) sparse extent, which is not supported");
        if (h.Magic != VmdkLayout.Magic)
            throw new ImageCorruptException(name, "magic", 0, "not a VMDK sparse extent");
        if (h.GdOffset == VmdkLayout.GdAtEnd)
            h = await ReadFooterAsync(file, ct).ConfigureAwait(false);
        if (h.Version > VmdkLayout.MaxVersion)
            throw new BlockException(Errno.EOPNOTSUPP, $"Unsupported VMDK version {h.Version}");
        // Version 3 adds changed block tracking we would not keep up to date; QEMU writes only compressed ones.
        if (h.Version == 3 && writable && !h.Compressed)
            throw new BlockException(Errno.EINVAL, "VMDK version 3 must be read only");
        if (h.GtesPerGt > VmdkLayout.MaxGtesPerGt)
            throw new ImageCorruptException(name, "num_gtes_per_gt", VmdkSparseHeader.GtesPerGtOffset, "L2 table size too big");
        if (h.GtesPerGt == 0 || h.Granularity == 0)
            throw new ImageCorruptException(name, h.GtesPerGt == 0 ? "num_gtes_per_gt" : "granularity",
                h.GtesPerGt == 0 ? VmdkSparseHeader.GtesPerGtOffset : VmdkSparseHeader.GranularityOffset, "L2 table size too small");
        if (h.Granularity > VmdkLayout.MaxGrainSectors)
            throw new ImageCorruptException(name, "granularity", VmdkSparseHeader.GranularityOffset, "Invalid granularity, image may be corrupt");
        if (!BitOperations.IsPow2(h.Granularity))
            throw new ImageCorruptException(name, "granularity", VmdkSparseHeader.GranularityOffset, $"grain size of {h.Granularity} sectors is not a power of two");
        if (h.Compressed && (long)h.Granularity * VmdkLayout.SectorSize > VmdkLayout.MaxCompressedGrainBytes)
            throw new ImageCorruptException(name, "granularity", VmdkSparseHeader.GranularityOffset,
                $"compressed grains larger than {VmdkLayout.MaxCompressedGrainBytes} bytes are not supported");
        // Capacity times the sector size must stay a valid guest size.
        if (h.Capacity > (ulong)(long.MaxValue / 2 / VmdkLayout.SectorSize))
            throw new ImageCorruptException(name, "capacity", VmdkSparseHeader.CapacityOffset, "image size too large");
        ulong coverage = h.GtesPerGt * h.Granularity;
        ulong gdEntries = (h.Capacity + coverage - 1) / coverage;
        if (gdEntries > VmdkLayout.MaxGdEntries)
            throw new ImageCorruptException(name, "capacity", VmdkSparseHeader.CapacityOffset, "L1 size too big");
        long fileSectors = (fileLength + VmdkLayout.SectorSize - 1) / VmdkLayout.SectorSize;
        if ((ulong)fileSectors < h.GrainOffset)
            throw new ImageCorruptException(name, "grain_offset", VmdkSparseHeader.GrainOffsetOffset,
                $"File truncated, expecting at least {h.GrainOffset * VmdkLayout.SectorSize} bytes");
        uint[] gd = await ReadDirectoryAsync(file, "gd_offset", VmdkSparseHeader.GdOffsetOffset, h.GdOffset, (int)gdEntries, fileLength, ct).ConfigureAwait(false);
        uint[]? rgd = null;
        if (h.HasRedundantTables && h.RgdOffset != 0)
            rgd = await ReadDirectoryAsync(file, "rgd_offset", VmdkSparseHeader.RgdOffsetOffset, h.RgdOffset, (int)gdEntries, fileLength, ct).ConfigureAwait(false);
        return new VmdkSparseExtent(file, type, start, h, gd, rgd);
    }

    /// <summary>
    /// A stream whose header says "GD at end" carries the real header in its footer: a footer marker sector,
    /// the header sector, and the end-of-stream sector, the last three sectors of the file.
    /// </summary>
    private static async ValueTask<VmdkSparseHeader> ReadFooterAsync(BlockNode file, CancellationToken ct)
    {
        long length = file.Length;
        long at = length - VmdkLayout.FooterBytes;
        if (at < VmdkSparseHeader.Size)
            throw new ImageCorruptException(file.Filename, "footer", Math.Max(at, 0), "Invalid footer");
        byte[] footer = new byte[VmdkLayout.FooterBytes];
        await file.ReadAsync(at, footer, ct).ConfigureAwait(false);
        var marker = VmdkMarker.Read(footer);
        var h = VmdkSparseHeader.Read(footer.AsSpan(VmdkLayout.SectorSize));
        var eos = VmdkMarker.Read(footer.AsSpan(2 * VmdkLayout.SectorSize));
        if (marker.Type != VmdkLayout.MarkerFooter || marker.Size != 0 || h.Magic != VmdkLayout.Magic
            || eos.Type != VmdkLayout.MarkerEndOfStream || eos.Size != 0 || eos.Value != 0 || h.GdOffset == VmdkLayout.GdAtEnd)
            throw new ImageCorruptException(file.Filename, "footer", at, "Invalid footer");
        return h;
    }

    private static async ValueTask<uint[]> ReadDirectoryAsync(BlockNode file, string field, int fieldOffset, ulong sector, int entries, long fileLength, CancellationToken ct)
    {
        long bytes = (long)entries * 4;
        if (sector > (ulong)(long.MaxValue / VmdkLayout.SectorSize) || (long)sector * VmdkLayout.SectorSize > fileLength - bytes)
            throw new ImageCorruptException(file.Filename, field, fieldOffset, $"grain directory at sector {sector} ({bytes} bytes) lies outside the file ({fileLength} bytes)");
        byte[] raw = new byte[bytes];
        await file.ReadAsync((long)sector * VmdkLayout.SectorSize, raw, ct).ConfigureAwait(false);
        var gd = new uint[entries];
        for (int i = 0; i < entries; i++)
            gd[i] = BinaryPrimitives.ReadUInt32LittleEndian(raw.AsSpan(i * 4));
        return gd;
    }

    /// <summary>The grain table of directory entry <paramref name="index"/>, read on first use; null when none is allocated.</summary>
    private async ValueTask<uint[]?> TableAsync(int index, CancellationToken ct)
    {
        if (_tables.TryGetValue(index, out var t))
            return t;
        uint sector = _gd[index];
        if (sector == 0)
            return null;
        long at = (long)sector * VmdkLayout.SectorSize;
        if (at > File.Length - _gtBytes)
            throw Corrupt($"grain directory entry {index}", _gdOffset + (index * 4L), $"grain table at sector {sector} lies outside the file");
        byte[] raw = ArrayPool<byte>.Shared.Rent(_gtBytes);
        try
        {
            Debug.Raise(BlkdebugEvent.L2Load);
            await File.ReadAsync(at, raw.AsMemory(0, _gtBytes), ct).ConfigureAwait(false);
            t = new uint[_gtEntries];
            for (int i = 0; i < t.Length; i++)
                t[i] = BinaryPrimitives.ReadUInt32LittleEndian(raw.AsSpan(i * 4));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(raw);
        }

        if (_tables.Count >= MaxCachedTables)
            DropCleanTables();
        _tables[index] = t;
        return t;
    }

    private void DropCleanTables()
    {
        var clean = new List<int>();
        foreach (int k in _tables.Keys)
        {
            if (!_dirtyTables.Contains(k))
                clean.Add(k);
        }

        foreach (int k in clean)
            _tables.Remove(k);
    }

    private (int Dir, int Entry, long InGrain) Locate(long offset)
    {
        long grain = offset / GrainBytes;
        return ((int)(grain / _gtEntries), (int)(grain % _gtEntries), offset % GrainBytes);
    }

    public override async ValueTask<VmdkMapping> MapAsync(long offset, CancellationToken cancellationToken)
    {
        var (dir, entry, inGrain) = Locate(offset);
        long rest = Math.Min(GrainBytes - inGrain, Length - offset);
        if (dir >= _gd.Length)
            throw new BlockException(Errno.EIO, $"Offset {Start + offset} lies outside the grain directory of '{Name}'");
        var table = await TableAsync(dir, cancellationToken).ConfigureAwait(false);
        uint e = table?[entry] ?? 0;
        if (e == 0)
            return new VmdkMapping(VmdkGrainState.Unallocated, 0, rest);
        if (e == VmdkLayout.GteZeroed && ZeroGrains)
            return new VmdkMapping(VmdkGrainState.Zeroed, 0, rest);
        long host = (long)e * VmdkLayout.SectorSize;
        return Compressed ? new VmdkMapping(VmdkGrainState.Compressed, host, rest) : new VmdkMapping(VmdkGrainState.Data, host + inGrain, rest);
    }

    /// <summary>Sets a grain's table entry in memory; it reaches the file at the next flush, after the data it points to.</summary>
    public async ValueTask SetEntryAsync(long offset, uint value, CancellationToken ct)
    {
        var (dir, entry, _) = Locate(offset);
        var table = await TableAsync(dir, ct).ConfigureAwait(false) ?? AllocateTable(dir);
        table[entry] = value;
        _dirtyTables.Add(dir);
    }

    /// <summary>
    /// A directory entry without a table (stream images leave empty ones out): a new zeroed table (and its
    /// redundant twin) at the end of the file. The table is written before the directory entry that names it.
    /// </summary>
    private uint[] AllocateTable(int dir)
    {
        long tableSectors = ((_gtBytes + VmdkLayout.SectorSize - 1) / VmdkLayout.SectorSize + _grainSectors - 1) / _grainSectors * _grainSectors;
        _gd[dir] = (uint)Reserve(tableSectors);
        if (_rgd != null && _rgd[dir] == 0)
            _rgd[dir] = (uint)Reserve(tableSectors);
        _dirtyDirectory.Add(dir);
        var t = new uint[_gtEntries];
        _tables[dir] = t;
        _dirtyTables.Add(dir);
        return t;
    }

    /// <summary>Hands out sectors at the end of the file; entries are 32-bit, so nothing may start past 2^32 sectors.</summary>
    public long Reserve(long sectors)
    {
        long s = _nextSector;
        if (s + sectors > VmdkLayout.MaxExtentSectors)
            throw new BlockException(Errno.ENOSPC, $"Extent '{Name}' is full: grains cannot be addressed past 2 TiB");
        _nextSector = s + sectors;
        return s;
    }

    /// <summary>Reserves a new grain; the caller writes its data, then sets the entry.</summary>
    public long ReserveGrain() => Reserve(_grainSectors);

    /// <summary>
    /// Compresses one whole grain and appends it at the end of the file behind its grain marker (when the extent
    /// has markers); returns the sector the table entry must name. The end is kept on a sector boundary.
    /// </summary>
    public async ValueTask<long> AppendCompressedAsync(long offset, ReadOnlyMemory<byte> grain, CancellationToken ct)
    {
        using var ms = new MemoryStream();
        using (var z = new ZLibStream(ms, CompressionLevel.Optimal, leaveOpen: true))
            z.Write(grain.Span);
        return await AppendPackedAsync(offset, ms.GetBuffer().AsMemory(0, (int)ms.Length), ct).ConfigureAwait(false);
    }

    /// <summary>Appends a grain already compressed (zlib) behind its marker; returns its sector.</summary>
    public async ValueTask<long> AppendPackedAsync(long offset, ReadOnlyMemory<byte> packed, CancellationToken ct)
    {
        using var ms = new MemoryStream();
        int head = HasMarkers ? VmdkLayout.GrainMarkerSize : 0;
        ms.SetLength(head);
        ms.Position = head;
        ms.Write(packed.Span);
        long dataLength = packed.Length;
        long total = (ms.Length + VmdkLayout.SectorSize - 1) / VmdkLayout.SectorSize * VmdkLayout.SectorSize;
        ms.SetLength(total);
        byte[] buf = ms.GetBuffer();
        if (HasMarkers)
            new VmdkMarker((ulong)(offset / VmdkLayout.SectorSize), (uint)dataLength, 0).WriteGrain(buf);
        long sector = Reserve(total / VmdkLayout.SectorSize);
        Debug.Raise(BlkdebugEvent.WriteCompressed);
        await File.WriteAsync(sector * VmdkLayout.SectorSize, buf.AsMemory(0, (int)total), RequestFlags.None, ct).ConfigureAwait(false);
        _streamAppended = true;
        return sector;
    }

    /// <summary>Reads a compressed grain whose marker (or stream) starts at <paramref name="host"/> into <paramref name="grain"/>.</summary>
    public async ValueTask ReadCompressedAsync(long host, Memory<byte> grain, CancellationToken ct)
    {
        // The compressed data of a grain may exceed the grain (incompressible data plus zlib's framing): read
        // up to two grains, as QEMU does, clipped to the file.
        long want = Math.Min(2 * GrainBytes, Math.Max(0, File.Length - host));
        byte[] buf = ArrayPool<byte>.Shared.Rent((int)Math.Max(want, VmdkLayout.GrainMarkerSize));
        try
        {
            Debug.Raise(BlkdebugEvent.ReadCompressed);
            await File.ReadAsync(host, buf.AsMemory(0, (int)want), ct).ConfigureAwait(false);
            int start = 0;
            long length = Math.Min(want, GrainBytes);
            if (HasMarkers)
            {
                if (want < VmdkLayout.GrainMarkerSize)
                    throw new BlockException(Errno.EIO, $"Compressed grain at offset {host} of '{Name}' lies outside the file");
                var m = VmdkMarker.Read(buf.AsSpan(0, VmdkLayout.GrainMarkerSize));
                start = VmdkLayout.GrainMarkerSize;
                length = m.Size;
            }

            if (length == 0 || length > want - start)
                throw new BlockException(Errno.EINVAL, $"Compressed grain at offset {host} of '{Name}' has an invalid size {length}");
            using var src = new MemoryStream(buf, start, (int)length, writable: false);
            using var z = new ZLibStream(src, CompressionMode.Decompress);
            int got = 0;
            try
            {
                while (got < grain.Length)
                {
                    int n = await z.ReadAsync(grain[got..], ct).ConfigureAwait(false);
                    if (n == 0)
                        break;
                    got += n;
                }
            }
            catch (InvalidDataException ex)
            {
                throw new BlockException(Errno.EINVAL, $"Compressed grain at offset {host} of '{Name}' does not decompress: {ex.Message}");
            }

            // A short last grain reads zeros after its data, as an uncompressed one would.
            grain.Span[got..].Clear();
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buf);
        }
    }

    /// <summary>
    /// Writes back what changed, in crash-safe order: the data (already written) is flushed first, then the grain
    /// tables (primary, then the redundant copy), flushed, then the directory entries of new tables, flushed. A crash
    /// in between leaves grains nothing points at, never an entry that points at unwritten data.
    /// </summary>
    public async ValueTask WriteBackAsync(CancellationToken ct)
    {
        if (!Dirty)
            return;
        Debug.Raise(BlkdebugEvent.FlushToDisk);
        await File.FlushAsync(ct).ConfigureAwait(false);
        if (_dirtyTables.Count > 0)
        {
            byte[] raw = new byte[_gtBytes];
            foreach (int dir in _dirtyTables)
            {
                var t = _tables[dir];
                for (int i = 0; i < t.Length; i++)
                    BinaryPrimitives.WriteUInt32LittleEndian(raw.AsSpan(i * 4), t[i]);
                Debug.Raise(BlkdebugEvent.L2Update);
                await File.WriteAsync((long)_gd[dir] * VmdkLayout.SectorSize, raw, RequestFlags.None, ct).ConfigureAwait(false);
                if (_rgd != null && _rgd[dir] != 0)
                    await File.WriteAsync((long)_rgd[dir] * VmdkLayout.SectorSize, raw, RequestFlags.None, ct).ConfigureAwait(false);
            }

            _dirtyTables.Clear();
            Debug.Raise(BlkdebugEvent.FlushToDisk);
            await File.FlushAsync(ct).ConfigureAwait(false);
        }

        if (_dirtyDirectory.Count > 0)
        {
            byte[] entry = new byte[4];
            foreach (int dir in _dirtyDirectory)
            {
                BinaryPrimitives.WriteUInt32LittleEndian(entry, _gd[dir]);
                await File.WriteAsync(_gdOffset + (dir * 4L), entry, RequestFlags.None, ct).ConfigureAwait(false);
                if (_rgd != null)
                {
                    BinaryPrimitives.WriteUInt32LittleEndian(entry, _rgd[dir]);
                    await File.WriteAsync(_rgdOffset + (dir * 4L), entry, RequestFlags.None, ct).ConfigureAwait(false);
                }
            }

            _dirtyDirectory.Clear();
            Debug.Raise(BlkdebugEvent.FlushToDisk);
            await File.FlushAsync(ct).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Ends a stream we appended grains to, the way a stream reader expects it after the grains: for each grain
    /// table in use a grain table marker and a copy of the table, a grain directory marker and a directory naming
    /// those copies, the footer (marker, then a copy of the header pointing at that directory) and the
    /// end-of-stream marker. The header and the tables in place stay what QEMU reads; the tail only adds to them,
    /// and a later session appends its grains and a new tail after it. Called at close, after the write-back.
    /// </summary>
    public async ValueTask AppendStreamEndAsync(CancellationToken ct)
    {
        if (!_streamAppended || !Compressed || !HasMarkers)
            return;
        _streamAppended = false;
        long gtSectors = (_gtBytes + VmdkLayout.SectorSize - 1) / VmdkLayout.SectorSize;
        long gdSectors = ((_gd.Length * 4L) + VmdkLayout.SectorSize - 1) / VmdkLayout.SectorSize;
        byte[] marker = new byte[VmdkMarker.MetadataSize];
        byte[] table = new byte[gtSectors * VmdkLayout.SectorSize];
        byte[] dir = new byte[gdSectors * VmdkLayout.SectorSize];
        for (int i = 0; i < _gd.Length; i++)
        {
            var t = await TableAsync(i, ct).ConfigureAwait(false);
            if (t == null || Array.TrueForAll(t, e => e == 0))
                continue;
            long at = Reserve(1 + gtSectors);
            Array.Clear(marker);
            new VmdkMarker((ulong)gtSectors, 0, VmdkLayout.MarkerGrainTable).WriteMetadata(marker);
            for (int j = 0; j < t.Length; j++)
                BinaryPrimitives.WriteUInt32LittleEndian(table.AsSpan(j * 4), t[j]);
            await File.WriteAsync(at * VmdkLayout.SectorSize, marker, RequestFlags.None, ct).ConfigureAwait(false);
            await File.WriteAsync((at + 1) * VmdkLayout.SectorSize, table, RequestFlags.None, ct).ConfigureAwait(false);
            BinaryPrimitives.WriteUInt32LittleEndian(dir.AsSpan(i * 4), (uint)(at + 1));
        }

        long gdAt = Reserve(1 + gdSectors);
        Array.Clear(marker);
        new VmdkMarker((ulong)gdSectors, 0, VmdkLayout.MarkerGrainDirectory).WriteMetadata(marker);
        await File.WriteAsync(gdAt * VmdkLayout.SectorSize, marker, RequestFlags.None, ct).ConfigureAwait(false);
        await File.WriteAsync((gdAt + 1) * VmdkLayout.SectorSize, dir, RequestFlags.None, ct).ConfigureAwait(false);
        long footer = Reserve(3);
        byte[] end = new byte[VmdkLayout.FooterBytes];
        new VmdkMarker(1, 0, VmdkLayout.MarkerFooter).WriteMetadata(end);
        (Header with { GdOffset = (ulong)(gdAt + 1) }).Write(end.AsSpan(VmdkLayout.SectorSize));
        // The end-of-stream marker is an all-zero sector.
        await File.WriteAsync(footer * VmdkLayout.SectorSize, end, RequestFlags.None, ct).ConfigureAwait(false);
        await File.FlushAsync(ct).ConfigureAwait(false);
    }

    /// <summary>qemu-img check's test: every allocated grain must start inside the file. Returns the sectors (extent-relative) that do not.</summary>
    public async ValueTask<List<long>> GrainsPastEndAsync(CancellationToken ct)
    {
        var bad = new List<long>();
        long fileLength = File.Length;
        for (long off = 0; off < Length; off += GrainBytes)
        {
            var m = await MapAsync(off, ct).ConfigureAwait(false);
            if (m.State is VmdkGrainState.Data or VmdkGrainState.Compressed && m.HostOffset >= fileLength)
            {
                bad.Add(off / VmdkLayout.SectorSize);
                break;
            }
        }

        return bad;
    }

    /// <summary>Allocated grains (for check's counts).</summary>
    public long TotalGrains => (Length + GrainBytes - 1) / GrainBytes;
}
