using System.Buffers;
using System.Globalization;
using System.IO.Compression;
using ICSharpCode.SharpZipLib.BZip2;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Io;

namespace SharpBlock.Drivers.Format.Dmg;

/// <summary>
/// An Apple disk image (UDIF): a trailer at the end names a plist (or a resource fork) whose mish tables map
/// sector runs to chunks stored raw, zlib- or bzip2-compressed, or not at all (zeros). Read-only, as in QEMU;
/// the last chunk decompressed stays cached, since reads come in pieces smaller than a chunk.
/// </summary>
public sealed class DmgNode : BlockNode
{
    private readonly BlockNode _file;
    private readonly DmgChunkTable _table;
    private readonly long _length;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private byte[] _chunk = [];
    private int _cached = -1;

    private DmgNode(BlockNode file, NodeSettings settings, DmgChunkTable table, long length)
        : base(settings)
    {
        _file = file;
        _table = table;
        _length = length;
        AttachChild(file, ChildRole.File, "file");
    }

    public override string DriverName => "dmg";

    public override long Length => _length;

    /// <summary>QEMU's dmg has no get_info: info shows no dirty flag.</summary>
    public override bool HasDriverInfo => false;

    internal int ChunkCount => _table.Chunks.Count;

    internal static void RefuseWritable(NodeSettings settings)
    {
        if (!settings.ReadOnly)
            throw new BlockException(Errno.EACCES, "Image is read-only");
    }

    /// <summary>Opens an image from its file node: the trailer, then its resource fork if it has one, else its plist.</summary>
    public static async ValueTask<DmgNode> OpenAsync(BlockNode file, NodeSettings settings, CancellationToken cancellationToken = default)
    {
        RefuseWritable(settings);
        long fileLength = file.Length;
        if (fileLength < DmgKoly.Size)
            throw new BlockException(Errno.EINVAL, "dmg file must be at least 512 bytes long");
        long koly = await FindKolyAsync(file, fileLength, cancellationToken).ConfigureAwait(false);
        byte[] tb = new byte[DmgKoly.Size];
        long have = Math.Min(DmgKoly.Size, fileLength - koly);
        await file.ReadAsync(koly, tb.AsMemory(0, (int)have), cancellationToken).ConfigureAwait(false);
        var k = DmgKoly.Read(tb);

        // QEMU's checks: both regions must end before the trailer; the sector count must be a positive size.
        if (k.RsrcForkOffset >= (ulong)koly || k.RsrcForkLength > (ulong)koly - k.RsrcForkOffset)
            throw DmgChunkTable.Invalid(string.Create(CultureInfo.InvariantCulture, $"rsrc_fork_offset {k.RsrcForkOffset} / rsrc_fork_length {k.RsrcForkLength} do not lie before the trailer at {koly}"));
        if (k.XmlOffset >= (ulong)koly || k.XmlLength > (ulong)koly - k.XmlOffset)
            throw DmgChunkTable.Invalid(string.Create(CultureInfo.InvariantCulture, $"xml_offset {k.XmlOffset} / xml_length {k.XmlLength} do not lie before the trailer at {koly}"));
        if (k.SectorCount > long.MaxValue / DmgLayout.SectorSize)
            throw DmgChunkTable.Invalid(string.Create(CultureInfo.InvariantCulture, $"sector_count {k.SectorCount} is too large"));

        var table = new DmgChunkTable();
        if (k.RsrcForkLength != 0)
            table.AddResourceFork(await ReadRegionAsync(file, k.RsrcForkOffset, k.RsrcForkLength, "rsrc_fork_length", cancellationToken).ConfigureAwait(false), fileLength);
        else if (k.XmlLength != 0)
            table.AddPlist(await ReadRegionAsync(file, k.XmlOffset, k.XmlLength, "xml_length", cancellationToken).ConfigureAwait(false), fileLength);
        else
            throw DmgChunkTable.Invalid("the trailer names neither a resource fork nor a plist");
        if (table.Chunks.Count == 0)
            throw DmgChunkTable.Invalid("the image's tables hold no chunks");
        table.Seal();
        return new DmgNode(file, settings, table, (long)k.SectorCount * DmgLayout.SectorSize);
    }

    /// <summary>The trailer's magic, looked for as QEMU does in the last 515 bytes (a file need not be whole sectors).</summary>
    private static async ValueTask<long> FindKolyAsync(BlockNode file, long fileLength, CancellationToken cancellationToken)
    {
        // QEMU searches from a sector-rounded length: the last 511 bytes of the second-last sector and 4 of the last.
        long rounded = (fileLength + DmgLayout.SectorSize - 1) & ~(long)(DmgLayout.SectorSize - 1);
        long start = rounded > 511 + 512 ? rounded - 511 - 512 : 0;
        int n = (int)Math.Min(DmgLayout.KolySearch, fileLength - start);
        byte[] b = new byte[DmgLayout.KolySearch];
        if (n > 0)
            await file.ReadAsync(start, b.AsMemory(0, n), cancellationToken).ConfigureAwait(false);
        int at = b.AsSpan(0, Math.Max(n, 0)).IndexOf("koly"u8);
        if (at < 0)
            throw new BlockException(Errno.EINVAL, "Could not locate UDIF trailer in dmg file");
        return start + at;
    }

    private static async ValueTask<byte[]> ReadRegionAsync(BlockNode file, ulong offset, ulong length, string field, CancellationToken cancellationToken)
    {
        if (length > DmgLayout.MaxMetadataLength)
            throw DmgChunkTable.Invalid(string.Create(CultureInfo.InvariantCulture, $"{field} {length} is larger than max ({DmgLayout.MaxMetadataLength})"));
        byte[] b = new byte[length];
        await file.ReadAsync((long)offset, b, cancellationToken).ConfigureAwait(false);
        return b;
    }

    protected override async ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            while (buffer.Length > 0)
            {
                ulong sector = (ulong)offset / DmgLayout.SectorSize;
                int index = _table.Find(sector);
                if (index < 0)
                    throw new BlockException(Errno.EIO, string.Create(CultureInfo.InvariantCulture, $"dmg: no chunk holds sector {sector}"));
                var c = _table.Chunks[index];
                // A zero chunk may be any length (no buffer holds it): count what is left of it in sectors,
                // which cannot overflow, before turning it into bytes.
                ulong leftSectors = c.Sector + c.SectorCount - sector;
                int inSector = (int)(offset % DmgLayout.SectorSize);
                int n = leftSectors > (ulong)(buffer.Length / DmgLayout.SectorSize) + 1
                    ? buffer.Length
                    : (int)Math.Min(buffer.Length, ((long)leftSectors * DmgLayout.SectorSize) - inSector);
                if (DmgLayout.IsZeroType(c.Type))
                {
                    buffer.Span[..n].Clear();
                }
                else
                {
                    if (_cached != index)
                        await LoadAsync(index, c, cancellationToken).ConfigureAwait(false);
                    int inChunk = ((int)(sector - c.Sector) * DmgLayout.SectorSize) + inSector;
                    _chunk.AsSpan(inChunk, n).CopyTo(buffer.Span);
                }

                offset += n;
                buffer = buffer[n..];
            }
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Reads and unpacks one data chunk into the cache; a stream that does not give exactly the chunk's sectors is damage (EIO, as in QEMU).</summary>
    private async ValueTask LoadAsync(int index, DmgChunkEntry c, CancellationToken cancellationToken)
    {
        _cached = -1;
        int size = (int)((long)c.SectorCount * DmgLayout.SectorSize);
        if (_chunk.Length < size)
            _chunk = new byte[Math.Max(size, (int)Math.Min((long)_table.MaxSectors * DmgLayout.SectorSize, int.MaxValue))];
        int stored = (int)c.Length;
        byte[] packed = ArrayPool<byte>.Shared.Rent(Math.Max(stored, 1));
        try
        {
            await _file.ReadAsync((long)c.Offset, packed.AsMemory(0, stored), cancellationToken).ConfigureAwait(false);
            var into = _chunk.AsSpan(0, size);
            bool ok;
            if (c.Type == DmgLayout.ChunkRaw)
            {
                // A raw chunk shorter than its sectors leaves their tail zero.
                int k = Math.Min(stored, size);
                packed.AsSpan(0, k).CopyTo(into);
                into[k..].Clear();
                ok = true;
            }
            else
            {
                ok = Unpack(c.Type, packed, stored, into);
            }

            if (!ok)
                throw new BlockException(Errno.EIO, string.Create(CultureInfo.InvariantCulture, $"dmg chunk {index} at offset {c.Offset} ({stored} bytes) does not unpack to {size} bytes"));
            _cached = index;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(packed);
        }
    }

    private static bool Unpack(uint type, byte[] packed, int stored, Span<byte> into)
    {
        try
        {
            using var ms = new MemoryStream(packed, 0, stored, writable: false);
            using Stream z = type == DmgLayout.ChunkZlib ? new ZLibStream(ms, CompressionMode.Decompress) : new BZip2InputStream(ms) { IsStreamOwner = false };
            int got = 0;
            while (got < into.Length)
            {
                int r = z.Read(into[got..]);
                if (r == 0)
                    return false;
                got += r;
            }

            return true;
        }
        catch (Exception e) when (e is InvalidDataException or ICSharpCode.SharpZipLib.SharpZipBaseException or IOException or IndexOutOfRangeException)
        {
            return false;
        }
    }

    protected override ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags, CancellationToken cancellationToken) =>
        throw new BlockException(Errno.EACCES, "Image is read-only");

    protected override ValueTask FlushCoreAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    protected override ValueTask TruncateCoreAsync(long size, CancellationToken cancellationToken) =>
        throw new BlockException(Errno.EOPNOTSUPP, "Image format driver does not support resize");

    protected override ValueTask CloseCoreAsync()
    {
        _lock.Dispose();
        return ValueTask.CompletedTask;
    }
}
