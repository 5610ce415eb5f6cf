using System.Buffers.Binary;
using System.Numerics;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Vhdx;

/// <summary>
/// The VHDX format (Hyper-V), dynamic and fixed images; differencing images are refused, as QEMU does. The
/// BAT lives in memory; one async lock serialises writes (allocation and the logged BAT updates).
/// </summary>
/// <remarks>
/// Crash safety follows the spec's log: a new payload block is written (and flushed) before the log entry
/// that records its BAT entry, the entry is flushed before the BAT sector is rewritten in place, and the
/// log is emptied only after that is durable. A crash leaves at worst an unreferenced block at the end of
/// the file, or a log that the next read-write open replays.
/// </remarks>
public sealed partial class VhdxNode : BlockNode, IClusteredImage
{
    private readonly BlockNode _file;
    private readonly SemaphoreSlim _meta = new(1, 1);
    private readonly VhdxHeader[] _headers = new VhdxHeader[2];
    private int _current;
    private readonly Guid _sessionGuid = Guid.NewGuid();
    private bool _firstVisibleWrite = true;

    private VhdxLog _log = null!;
    private readonly List<(long Start, long End)> _regions = [];
    private ulong[] _bat = [];
    private long _batOffset;
    private long _batLength;
    private long _metadataOffset;
    private int _blockSize;
    private int _blockBits;
    private int _logicalSectorSize;
    private int _physicalSectorSize;
    private long _chunkRatio;
    private int _chunkRatioBits;
    private long _size;
    private uint _fileParameterFlags;
    private Guid _page83;

    private VhdxNode(BlockNode file, NodeSettings settings)
        : base(settings)
    {
        _file = file;
        AttachChild(file, ChildRole.File, "file");
    }

    public override string DriverName => "vhdx";

    public override long Length => _size;

    /// <summary>The payload block size: QEMU reports it as the cluster size.</summary>
    public int ClusterSize => _blockSize;

    public int BlockSize => _blockSize;

    public int LogicalSectorSize => _logicalSectorSize;

    public int PhysicalSectorSize => _physicalSectorSize;

    /// <summary>The disk's SCSI page 83 identifier (a GUID), as the metadata names it.</summary>
    public Guid Page83 => _page83;

    /// <summary>Whether the image is fixed (LeaveBlocksAllocated): blocks stay allocated once they are.</summary>
    public bool LeaveBlocksAllocated => (_fileParameterFlags & VhdxLayout.LeaveBlocksAllocated) != 0;

    /// <summary>The header now in use.</summary>
    internal VhdxHeader CurrentHeader => _headers[_current];

    /// <summary>Whether this open replayed a log (qemu-img check counts that as one repaired corruption).</summary>
    public bool LogReplayedOnOpen { get; private set; }

    internal int BatEntryCount => _bat.Length;

    internal long ChunkRatio => _chunkRatio;

    internal VhdxBatEntry BatEntry(int index) => new(Volatile.Read(ref _bat[index]));

    private string FileName => _file.Filename;

    private ImageCorruptException Corrupt(string field, long offset, string problem) => new(FileName, field, offset, problem);

    /// <summary>Opens an image from its file node: checks every structure against the file and QEMU's limits, replays a log if asked to write.</summary>
    public static async ValueTask<VhdxNode> OpenAsync(BlockNode file, NodeSettings settings, CancellationToken cancellationToken = default)
    {
        file.RefuseOtherWriters();
        var node = new VhdxNode(file, settings);
        try
        {
            await node.LoadAsync(cancellationToken).ConfigureAwait(false);
            return node;
        }
        catch
        {
            await node.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async ValueTask LoadAsync(CancellationToken ct)
    {
        long fileLength = _file.Length;
        if (fileLength < VhdxLayout.HeaderSectionEnd)
            throw Corrupt("file identifier", 0, $"file is too short ({fileLength} bytes) to hold the 1 MiB VHDX header section");
        byte[] section = new byte[VhdxLayout.RegionTable2Offset];
        await _file.ReadAsync(0, section, ct).ConfigureAwait(false);
        if (!section.AsSpan(0, 8).SequenceEqual(VhdxLayout.FileSignature))
            throw Corrupt("file identifier", 0, "not a VHDX image (no 'vhdxfile' signature)");
        ReadHeaders(section);
        var h = CurrentHeader;
        long headerAt = _current == 0 ? VhdxLayout.Header1Offset : VhdxLayout.Header2Offset;
        if (h.LogOffset < (ulong)VhdxLayout.LogMinSize || h.LogOffset % (ulong)VhdxLayout.LogMinSize != 0)
            throw Corrupt("log offset", headerAt + VhdxHeader.LogOffsetOffset, $"0x{h.LogOffset:x} is not a whole number of MiB past the header section");
        if (h.LogVersion != VhdxLayout.LogVersion)
            throw Corrupt("log version", headerAt + VhdxHeader.LogVersionOffset, $"unsupported log version {h.LogVersion}");
        if (h.LogLength % VhdxLayout.LogMinSize != 0)
            throw Corrupt("log length", headerAt + VhdxHeader.LogLengthOffset, $"{h.LogLength} is not a multiple of 1 MiB");
        if (h.LogOffset > (ulong)fileLength || h.LogLength > (ulong)fileLength - h.LogOffset)
            throw Corrupt("log offset", headerAt + VhdxHeader.LogOffsetOffset, $"log at 0x{h.LogOffset:x} ({h.LogLength} bytes) lies outside the file ({fileLength} bytes)");
        _log = new VhdxLog(_file, (long)h.LogOffset, h.LogLength);
        _regions.Add(((long)h.LogOffset, (long)h.LogOffset + h.LogLength));

        // The log must be replayed before anything it may have changed (region table, metadata, BAT) is read.
        if (h.LogGuid != Guid.Empty && h.LogLength != 0)
        {
            var entries = await _log.FindActiveSequenceAsync(h.LogGuid, ct).ConfigureAwait(false);
            if (entries.Count > 0)
            {
                if (ReadOnly)
                    throw new BlockException(Errno.EPERM,
                        $"VHDX image file '{FileName}' opened read-only, but contains a log that needs to be replayed\nTo replay the log, run:\nqemu-img check -r all '{FileName}'");
                // A replay changes what the guest may see: a new data write GUID first, as for a guest write.
                await UserVisibleWriteAsync(ct).ConfigureAwait(false);
                await _log.ReplayAsync(entries, ct).ConfigureAwait(false);
                await UpdateHeadersAsync(false, Guid.Empty, ct).ConfigureAwait(false);
                LogReplayedOnOpen = true;
                fileLength = _file.Length;
                await _file.ReadAsync(0, section, ct).ConfigureAwait(false);
            }
        }

        var (bat, metadata) = ReadRegionTable(section.AsSpan((int)VhdxLayout.RegionTable1Offset, VhdxLayout.RegionTableSize), fileLength);
        await ReadMetadataAsync(metadata, ct).ConfigureAwait(false);
        await ReadBatAsync(bat, fileLength, ct).ConfigureAwait(false);

        // A writer announces itself in the headers first (a new file write GUID), as the spec asks.
        if (!ReadOnly && !LogReplayedOnOpen)
            await UpdateHeadersAsync(false, null, ct).ConfigureAwait(false);
    }

    private void ReadHeaders(ReadOnlySpan<byte> section)
    {
        bool v1 = VhdxHeader.TryRead(section[(int)VhdxLayout.Header1Offset..], out _headers[0]);
        bool v2 = VhdxHeader.TryRead(section[(int)VhdxLayout.Header2Offset..], out _headers[1]);
        if (!v1 && !v2)
            throw new ImageCorruptException(FileName, "header", VhdxLayout.Header1Offset, "No valid VHDX header found");
        if (v1 && v2)
        {
            // Equal sequence numbers are damage, unless the two headers are identical (Disk2VHD writes them so).
            if (_headers[0].SequenceNumber == _headers[1].SequenceNumber
                && !section.Slice((int)VhdxLayout.Header1Offset, VhdxHeader.LogOffsetOffset + 8).SequenceEqual(section.Slice((int)VhdxLayout.Header2Offset, VhdxHeader.LogOffsetOffset + 8)))
                throw new ImageCorruptException(FileName, "header sequence number", VhdxLayout.Header1Offset + VhdxHeader.SequenceNumberOffset, "No valid VHDX header found");
            _current = _headers[1].SequenceNumber > _headers[0].SequenceNumber ? 1 : 0;
        }
        else
        {
            _current = v1 ? 0 : 1;
        }

        if (!v1)
            _headers[0] = _headers[1];
        if (!v2)
            _headers[1] = _headers[0];
    }

    /// <summary>Registers a region of the file, refusing one that overlaps a region already known.</summary>
    private void AddRegion(string field, long fieldOffset, long start, long length)
    {
        long end = start + length;
        foreach (var (s, e) in _regions)
        {
            if (start < e && end > s)
                throw Corrupt(field, fieldOffset, $"region at 0x{start:x} ({length} bytes) overlaps another region at 0x{s:x}");
        }

        _regions.Add((start, end));
    }

    private (VhdxRegionEntry Bat, VhdxRegionEntry Metadata) ReadRegionTable(ReadOnlySpan<byte> b, long fileLength)
    {
        const long at = VhdxLayout.RegionTable1Offset;
        if (!VhdxLayout.ChecksumValid(b, VhdxRegionTable.ChecksumOffset))
            throw Corrupt("region table checksum", at + VhdxRegionTable.ChecksumOffset, "CRC-32C does not match");
        var t = VhdxRegionTable.Read(b);
        if (t.Signature != VhdxLayout.RegionSignature)
            throw Corrupt("region table signature", at, "not 'regi'");
        if (t.EntryCount > VhdxLayout.MaxTableEntries)
            throw Corrupt("region table entry count", at + VhdxRegionTable.EntryCountOffset, $"{t.EntryCount} entries, more than {VhdxLayout.MaxTableEntries}");
        VhdxRegionEntry? bat = null, metadata = null;
        for (int i = 0; i < t.Entries.Length; i++)
        {
            var e = t.Entries[i];
            long entryAt = at + VhdxRegionTable.EntriesOffset + (i * VhdxRegionEntry.Size);
            if (e.FileOffset < (ulong)VhdxLayout.HeaderSectionEnd || e.FileOffset > (ulong)fileLength || e.Length > (ulong)fileLength - e.FileOffset)
                throw Corrupt("region file offset", entryAt + VhdxRegionEntry.FileOffsetOffset, $"region at 0x{e.FileOffset:x} ({e.Length} bytes) lies outside the file ({fileLength} bytes) or in its header section");
            AddRegion("region file offset", entryAt + VhdxRegionEntry.FileOffsetOffset, (long)e.FileOffset, e.Length);
            if (e.Guid == VhdxLayout.BatRegion)
            {
                if (bat != null)
                    throw Corrupt("region guid", entryAt, "the BAT region is listed twice");
                bat = e;
            }
            else if (e.Guid == VhdxLayout.MetadataRegion)
            {
                if (metadata != null)
                    throw Corrupt("region guid", entryAt, "the metadata region is listed twice");
                metadata = e;
            }
            else if ((e.Flags & VhdxLayout.RegionRequired) != 0)
            {
                throw new BlockException(Errno.EOPNOTSUPP, $"VHDX image '{FileName}' has a required region {e.Guid} that is not supported");
            }
        }

        if (bat is not { } b1 || metadata is not { } m1)
            throw Corrupt("region table", at, "the BAT or the metadata region is missing");
        return (b1, m1);
    }

    private async ValueTask ReadMetadataAsync(VhdxRegionEntry region, CancellationToken ct)
    {
        long at = (long)region.FileOffset;
        if (region.Length < VhdxLayout.MetadataTableSize)
            throw Corrupt("metadata region length", at, $"{region.Length} bytes cannot hold the 64 KiB metadata table");
        // Only the table and the items are read: the region's length comes from the image and may be huge.
        byte[] table = new byte[VhdxLayout.MetadataTableSize];
        await _file.ReadAsync(at, table, ct).ConfigureAwait(false);
        var t = VhdxMetadataTable.Read(table);
        if (t.Signature != VhdxLayout.MetadataSignature)
            throw Corrupt("metadata table signature", at, "not 'metadata'");
        if (t.EntryCount > VhdxLayout.MaxTableEntries)
            throw Corrupt("metadata table entry count", at + VhdxMetadataTable.EntryCountOffset, $"{t.EntryCount} entries, more than {VhdxLayout.MaxTableEntries}");
        var found = new Dictionary<Guid, VhdxMetadataEntry>();
        for (int i = 0; i < t.Entries.Length; i++)
        {
            var e = t.Entries[i];
            long entryAt = at + VhdxMetadataTable.EntriesOffset + (i * VhdxMetadataEntry.Size);
            bool known = e.ItemId == VhdxLayout.FileParametersItem || e.ItemId == VhdxLayout.VirtualDiskSizeItem || e.ItemId == VhdxLayout.Page83Item
                || e.ItemId == VhdxLayout.LogicalSectorSizeItem || e.ItemId == VhdxLayout.PhysicalSectorSizeItem || e.ItemId == VhdxLayout.ParentLocatorItem;
            if (!known)
            {
                if ((e.Flags & VhdxLayout.MetadataIsRequired) != 0)
                    throw new BlockException(Errno.EOPNOTSUPP, $"VHDX image '{FileName}' has a required metadata item {e.ItemId} that is not supported");
                continue;
            }

            if (!found.TryAdd(e.ItemId, e))
                throw Corrupt("metadata item id", entryAt, $"item {e.ItemId} is listed twice");
            if (e.Length > 0 && (e.Offset < VhdxLayout.MetadataTableSize || e.Offset > region.Length || e.Length > region.Length - e.Offset))
                throw Corrupt("metadata item offset", entryAt + VhdxMetadataEntry.OffsetOffset, $"item at {e.Offset} ({e.Length} bytes) lies outside the metadata region ({region.Length} bytes)");
        }

        async ValueTask<byte[]> ItemAsync(Guid id, int bytes, string name)
        {
            if (!found.TryGetValue(id, out var e))
                throw new BlockException(Errno.EOPNOTSUPP, $"VHDX image '{FileName}' lacks the required metadata item '{name}'");
            if (e.Length < bytes)
                throw Corrupt(name, at + e.Offset, $"item is {e.Length} bytes, needs {bytes}");
            byte[] value = new byte[bytes];
            await _file.ReadAsync(at + e.Offset, value, ct).ConfigureAwait(false);
            return value;
        }

        byte[] fp = await ItemAsync(VhdxLayout.FileParametersItem, 8, "file parameters").ConfigureAwait(false);
        uint blockSize = BinaryPrimitives.ReadUInt32LittleEndian(fp);
        _fileParameterFlags = BinaryPrimitives.ReadUInt32LittleEndian(fp.AsSpan(4));
        ulong size = BinaryPrimitives.ReadUInt64LittleEndian(await ItemAsync(VhdxLayout.VirtualDiskSizeItem, 8, "virtual disk size").ConfigureAwait(false));
        _page83 = new Guid(await ItemAsync(VhdxLayout.Page83Item, 16, "page 83 data").ConfigureAwait(false));
        uint logical = BinaryPrimitives.ReadUInt32LittleEndian(await ItemAsync(VhdxLayout.LogicalSectorSizeItem, 4, "logical sector size").ConfigureAwait(false));
        uint physical = BinaryPrimitives.ReadUInt32LittleEndian(await ItemAsync(VhdxLayout.PhysicalSectorSizeItem, 4, "physical sector size").ConfigureAwait(false));

        if ((_fileParameterFlags & VhdxLayout.HasParent) != 0)
        {
            // QEMU reads no differencing images: with a parent locator they are unsupported, without one invalid.
            if (found.ContainsKey(VhdxLayout.ParentLocatorItem))
                throw new BlockException(Errno.EOPNOTSUPP, $"VHDX image '{FileName}' is a differencing image (it has a parent); differencing images are not supported");
            throw Corrupt("file parameters", at, "the image has a parent but no parent locator");
        }

        if (blockSize < VhdxLayout.MinBlockSize || blockSize > VhdxLayout.MaxBlockSize || !BitOperations.IsPow2(blockSize))
            throw Corrupt("block size", at, $"{blockSize} is not a power of two from 1 MiB to 256 MiB");
        if (logical is not (512 or 4096))
            throw Corrupt("logical sector size", at, $"{logical} is neither 512 nor 4096");
        if (size > (ulong)VhdxLayout.MaxVirtualSize)
            throw Corrupt("virtual disk size", at, $"{size} bytes is more than the 64 TiB QEMU allows");
        _blockSize = (int)blockSize;
        _blockBits = BitOperations.Log2(blockSize);
        _logicalSectorSize = (int)logical;
        _physicalSectorSize = (int)physical;
        // Whole logical sectors only, as QEMU counts the disk.
        _size = (long)size & ~((long)logical - 1);
        _chunkRatio = VhdxLayout.SectorsPerBitmapBlock * logical / blockSize;
        _chunkRatioBits = BitOperations.Log2((ulong)_chunkRatio);
        _metadataOffset = at;
    }

    /// <summary>BAT entries for a disk: each chunk of payload entries is followed by a sector bitmap entry, except after the last.</summary>
    internal static long BatEntries(long size, long blockSize, long chunkRatio)
    {
        long dataBlocks = (size + blockSize - 1) / blockSize;
        return dataBlocks == 0 ? 0 : dataBlocks + ((dataBlocks - 1) / chunkRatio);
    }

    private async ValueTask ReadBatAsync(VhdxRegionEntry region, long fileLength, CancellationToken ct)
    {
        long entries = BatEntries(_size, _blockSize, _chunkRatio);
        if (entries * VhdxBatEntry.Size > region.Length)
            throw Corrupt("BAT region length", VhdxLayout.RegionTable1Offset, $"{region.Length} bytes cannot hold the {entries} BAT entries of a {_size}-byte disk");
        // Its entries are rewritten through the log in whole 4 KiB sectors (the spec puts regions on MiB boundaries).
        if (region.FileOffset % VhdxLayout.LogSectorSize != 0)
            throw Corrupt("BAT region file offset", VhdxLayout.RegionTable1Offset, $"0x{region.FileOffset:x} is not aligned to 4 KiB");
        _batOffset = (long)region.FileOffset;
        _batLength = region.Length;
        // In pieces, so a large BAT costs its array and not twice that.
        _bat = new ulong[entries];
        byte[] raw = new byte[(int)Math.Min(entries * VhdxBatEntry.Size, VhdxLayout.MiB)];
        for (long done = 0; done < entries;)
        {
            int n = (int)Math.Min(raw.Length / VhdxBatEntry.Size, entries - done);
            await _file.ReadAsync(_batOffset + (done * VhdxBatEntry.Size), raw.AsMemory(0, n * VhdxBatEntry.Size), ct).ConfigureAwait(false);
            for (int i = 0; i < n; i++)
                _bat[done + i] = BinaryPrimitives.ReadUInt64LittleEndian(raw.AsSpan(i * VhdxBatEntry.Size));
            done += n;
        }
        for (int i = 0; i < entries; i++)
        {
            var problem = CheckBatEntry(i, fileLength);
            if (problem != null)
                throw Corrupt($"BAT entry {i}", _batOffset + (i * VhdxBatEntry.Size), problem);
        }
    }

    /// <summary>Whether entry <paramref name="i"/> is a sector bitmap entry (the last of each chunk).</summary>
    internal bool IsBitmapEntry(int i) => (i + 1) % (_chunkRatio + 1) == 0;

    /// <summary>What is wrong with a present payload entry (it must lie in the file, past the header section, clear of the regions), or null.</summary>
    internal string? CheckBatEntry(int i, long fileLength)
    {
        var e = BatEntry(i);
        if (IsBitmapEntry(i) || e.State != VhdxBlockState.FullyPresent)
            return null;
        long payload = i - (i / (_chunkRatio + 1));
        // The last block may be partial in the file: QEMU once wrote images like that.
        long length = Math.Min(_blockSize, _size - (payload * _blockSize));
        long offset = e.FileOffset;
        if (offset < VhdxLayout.HeaderSectionEnd)
            return $"block offset 0x{offset:x} lies in the header section";
        if (offset >= fileLength)
            return $"start offset {offset} points after end of file ({fileLength}). Image has probably been truncated.";
        if (offset + length > fileLength)
            return $"end offset {offset + length - 1} points after end of file ({fileLength}). Image has probably been truncated.";
        foreach (var (s, end) in _regions)
        {
            if (offset < end && offset + _blockSize > s)
                return $"block at 0x{offset:x} overlaps a metadata region at 0x{s:x}";
        }

        return null;
    }

    public override async ValueTask<ImageInfo> GetImageInfoAsync(CancellationToken cancellationToken = default)
    {
        var info = await base.GetImageInfoAsync(cancellationToken).ConfigureAwait(false);
        info.ClusterSize = _blockSize;
        return info;
    }

    protected override ValueTask FlushCoreAsync(CancellationToken cancellationToken) => _file.FlushAsync(cancellationToken);

    protected override async ValueTask CloseCoreAsync()
    {
        await _meta.WaitAsync().ConfigureAwait(false);
        _meta.Release();
    }
}
