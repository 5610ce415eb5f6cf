using Microsoft.Win32.SafeHandles;
using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Drivers.Protocol.Vvfat;

/// <summary>
/// QEMU's vvfat: a host directory shown as a FAT disk. The tree is laid out once, when the node opens
/// (<see cref="FatTree"/>); the MBR, boot sector, FATs and directories are built in memory, and file data is
/// read from the host files when the guest reads their clusters. Without rw a writable open is refused in
/// QEMU's words; with rw writes go to an overlay and reach the directory at each flush
/// (VvfatNode.Overlay.cs).
/// </summary>
public sealed partial class VvfatNode : BlockNode
{
    private const int Sector = VvfatGeometry.SectorSize;

    private readonly VvfatGeometry _g;
    private readonly FatTree _tree;
    private readonly string _filename;
    private readonly byte[] _mbr;
    private readonly byte[] _boot;
    private readonly byte[] _fsInfo;
    private readonly byte[] _fat;

    private VvfatNode(NodeSettings settings, VvfatGeometry g, FatTree tree, string label, string filename, string dir, bool rw)
        : base(settings)
    {
        _dir = dir;
        _rw = rw;
        _committed = new Dictionary<string, FatServedEntry>(tree.Entries, StringComparer.Ordinal);
        _g = g;
        _tree = tree;
        _filename = filename;
        // QEMU 7.2's fixed disk signature and volume serial (the same bytes, rotated): a disk that stays the
        // same from run to run.
        _mbr = g.Floppy ? [] : FatLayout.Mbr(g, 0xbe1afdfa);
        _boot = FatLayout.BootSector(g, 0xfabe1afd, label, tree.RootCluster);
        _fsInfo = g.FatType == 32 ? FatLayout.FsInfo(g, tree.UsedClusters) : [];
        _fat = FatLayout.Fat(g, tree.Extents);
    }

    public override string DriverName => "vvfat";

    public override string Filename => _filename;

    public override long Length => _g.TotalSectors * Sector;

    public int FatType => _g.FatType;

    /// <summary>Lays out <paramref name="dir"/>; QEMU's option checks and wordings.</summary>
    public static VvfatNode Open(string dir, int fatType, bool floppy, bool rw, string? label, NodeSettings settings)
    {
        if (!rw && !settings.ReadOnly)
            throw new BlockException(Errno.EACCES, "Image is read-only");
        label ??= "QEMU VVFAT";
        if (System.Text.Encoding.UTF8.GetByteCount(label) > 11)
            throw new BlockException(Errno.EINVAL, "vvfat label cannot be longer than 11 bytes");
        var g = VvfatGeometry.For(fatType, floppy);
        var tree = FatTree.Build(g, dir, label);
        // The directory is escaped: a quote or backslash in its name must not break the json: name.
        string quoted = System.Text.Json.JsonEncodedText.Encode(dir, System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping).ToString();
        string name = $"json:{{\"fat-type\": {g.FatType}, \"dir\": \"{quoted}\", \"driver\": \"vvfat\", \"floppy\": {(floppy ? "true" : "false")}, \"rw\": {(rw ? "true" : "false")}}}";
        return new VvfatNode(settings, g, tree, label, name, Path.GetFullPath(dir), rw);
    }

    /// <summary>The disk as laid out at open, before anything the guest wrote.</summary>
    private async ValueTask ReadBaseAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        while (buffer.Length > 0)
        {
            long sector = offset / Sector;
            int n = await ReadPieceAsync(sector, (int)(offset % Sector), buffer, cancellationToken).ConfigureAwait(false);
            offset += n;
            buffer = buffer[n..];
        }
    }

    /// <summary>Reads from one region (a fixed sector, the FATs, the root, one cluster run); returns the bytes read.</summary>
    private async ValueTask<int> ReadPieceAsync(long sector, int inSector, Memory<byte> buffer, CancellationToken ct)
    {
        long at = (sector * Sector) + inSector;
        if (sector < _g.FatStart)
        {
            // The MBR, the boot sector and the reserved sectors after it (FAT32's FSInfo and backups).
            long rel = sector - _g.Hidden;
            byte[]? src = sector == 0 && !_g.Floppy ? _mbr
                : rel == 0 || rel == 6 ? _boot
                : _g.FatType == 32 && (rel == 1 || rel == 7) ? _fsInfo : null;
            return Copy(src, inSector, buffer, Sector - inSector);
        }

        if (sector < _g.RootStart)
        {
            long inFats = at - (_g.FatStart * Sector);
            int inFat = (int)(inFats % _fat.Length);
            return Copy(_fat, inFat, buffer, _fat.Length - inFat);
        }

        if (sector < _g.DataStart)
        {
            int inRoot = (int)(at - (_g.RootStart * Sector));
            return Copy(_tree.FixedRoot, inRoot, buffer, _tree.FixedRoot.Length - inRoot);
        }

        long dataByte = at - (_g.DataStart * Sector);
        long cluster = 2 + (dataByte / _g.ClusterSize);
        var extent = Find(cluster);
        if (extent == null)
        {
            // Free clusters (and the sectors past the last whole cluster) read as zeros, up to the next run.
            long nextRun = NextRunStart(cluster);
            long end = (_g.DataStart * Sector) + ((nextRun - 2) * _g.ClusterSize);
            return Copy(null, 0, buffer, (int)Math.Min(int.MaxValue, Math.Max(Sector - inSector, end - at)));
        }

        long inExtent = dataByte - ((long)(extent.FirstCluster - 2) * _g.ClusterSize);
        int n = (int)Math.Min(buffer.Length, ((long)extent.Clusters * _g.ClusterSize) - inExtent);
        if (extent.Directory != null)
            return Copy(extent.Directory, (int)inExtent, buffer, n);
        await ReadHostFileAsync(extent, inExtent, buffer[..n], ct).ConfigureAwait(false);
        return n;
    }

    /// <summary>Copies from <paramref name="src"/> (zeros when null or past its end), at most <paramref name="limit"/> bytes.</summary>
    private static int Copy(byte[]? src, int from, Memory<byte> buffer, long limit)
    {
        int n = (int)Math.Min(buffer.Length, Math.Max(1, limit));
        var dst = buffer.Span[..n];
        int have = src == null ? 0 : Math.Clamp(src.Length - from, 0, n);
        if (have > 0)
            src.AsSpan(from, have).CopyTo(dst);
        dst[have..].Clear();
        return n;
    }

    /// <summary>
    /// File data as the host file holds it now; past its end (it shrank, or the cluster's tail) zeros. A
    /// file that cannot be read any more is an I/O error for the guest, naming the file.
    /// </summary>
    private static async ValueTask ReadHostFileAsync(FatExtent extent, long offset, Memory<byte> buffer, CancellationToken ct)
    {
        int want = (int)Math.Clamp(extent.Size - offset, 0, buffer.Length);
        int got = 0;
        if (want > 0)
        {
            try
            {
                using SafeFileHandle h = System.IO.File.OpenHandle(extent.HostPath!, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, FileOptions.Asynchronous);
                while (got < want)
                {
                    int r = await RandomAccess.ReadAsync(h, buffer[got..want], offset + got, ct).ConfigureAwait(false);
                    if (r == 0)
                        break;
                    got += r;
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new BlockException(Errno.EIO, $"vvfat: could not read {extent.HostPath}: {e.Message}");
            }
        }

        buffer.Span[got..].Clear();
    }

    private FatExtent? Find(long cluster)
    {
        var list = _tree.Extents;
        int lo = 0, hi = list.Count - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            var e = list[mid];
            if (cluster < e.FirstCluster)
                hi = mid - 1;
            else if (cluster >= e.EndCluster)
                lo = mid + 1;
            else
                return e;
        }

        return null;
    }

    private long NextRunStart(long cluster)
    {
        foreach (var e in _tree.Extents)
        {
            if (e.FirstCluster > cluster)
                return e.FirstCluster;
        }

        return long.MaxValue / _g.ClusterSize;
    }

}
