using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using SharpBlock.Errors;

namespace SharpBlock.Drivers.Protocol.Vvfat;

/// <summary>
/// A host directory laid out as a FAT volume: every directory and file gets one contiguous cluster run, in a
/// depth-first walk of the tree with names in ordinal order (so the same tree always gives the same disk).
/// What does not fit the volume, or a FAT12/16 root with more than its 512 entries, is refused.
/// </summary>
internal sealed class FatTree
{
    private readonly VvfatGeometry _g;
    private readonly List<FatExtent> _extents = [];
    private int _next = 2;

    private FatTree(VvfatGeometry g) => _g = g;

    private readonly Dictionary<string, FatServedEntry> _entries = new(StringComparer.Ordinal);

    /// <summary>What was served, by path below the directory (directories end in '/').</summary>
    public IReadOnlyDictionary<string, FatServedEntry> Entries => _entries;

    /// <summary>Cluster runs in ascending order.</summary>
    public IReadOnlyList<FatExtent> Extents => _extents;

    /// <summary>The fixed root directory of FAT12/16 (empty on FAT32, whose root is a cluster run).</summary>
    public byte[] FixedRoot { get; private set; } = [];

    /// <summary>First cluster of the root directory on FAT32.</summary>
    public int RootCluster { get; private set; }

    /// <summary>Clusters in use.</summary>
    public int UsedClusters => _next - 2;

    public static FatTree Build(VvfatGeometry g, string dir, string label)
    {
        var t = new FatTree(g);
        var root = new DirectoryInfo(dir);
        if (!root.Exists)
            throw new BlockException(Errno.EIO, $"Could not read directory {dir}");
        if (g.FatType == 32)
        {
            t.RootCluster = t.Directory(root, label, parentCluster: 0, isRoot: true, [], "").Extent.FirstCluster;
        }
        else
        {
            t.FixedRoot = t.Directory(root, label, 0, isRoot: true, [], "").Bytes;
        }

        return t;
    }

    /// <summary>
    /// Lays out one directory: its own clusters first (not for a fixed root), then each child (a file's run,
    /// or a subdirectory and everything in it), then the directory's entries naming them.
    /// </summary>
    private (byte[] Bytes, FatExtent Extent) Directory(DirectoryInfo dir, string label, int parentCluster, bool isRoot, HashSet<string> ancestors, string rel)
    {
        FileSystemInfo[] children;
        // A link back to a directory above would make the tree endless: such links are left out.
        string real = RealPath(dir);
        ancestors = [.. ancestors, real];
        try
        {
            children = [.. dir.EnumerateFileSystemInfos().Where(c => Served(c) && !(c is DirectoryInfo d && ancestors.Contains(RealPath(d))))
                .OrderBy(c => c.Name, StringComparer.Ordinal)];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BlockException(Errno.EIO, $"Could not read directory {dir.FullName}");
        }

        // Names first: the entry count decides the directory's size.
        var taken = new HashSet<string>(StringComparer.Ordinal);
        var names = new List<(FileSystemInfo Info, byte[] Short, byte[] Long)>(children.Length);
        int entries = isRoot ? 1 : 2;
        foreach (var c in children)
        {
            byte[] sn = FatNames.ShortName(c.Name, taken);
            byte[] ln = FatNames.FitsShortName(c.Name, sn) ? [] : FatNames.LongNameEntries(c.Name, sn);
            names.Add((c, sn, ln));
            entries += 1 + (ln.Length / VvfatGeometry.DirEntrySize);
        }

        bool fixedRoot = isRoot && _g.FatType != 32;
        if (fixedRoot && entries > _g.RootEntries)
            throw new BlockException(Errno.EINVAL, string.Create(CultureInfo.InvariantCulture, $"Too many entries in the root directory of {dir.FullName} ({entries}; FAT{_g.FatType} holds {_g.RootEntries})"));
        long dirBytes = (long)entries * VvfatGeometry.DirEntrySize;
        FatExtent? self = null;
        int selfCluster = 0;
        byte[] bytes;
        if (fixedRoot)
        {
            bytes = new byte[_g.RootSectors * VvfatGeometry.SectorSize];
        }
        else
        {
            self = Allocate(dirBytes, null);
            selfCluster = self.FirstCluster;
            bytes = new byte[self.Clusters * _g.ClusterSize];
            self.Directory = bytes;
        }

        int at = 0;
        if (isRoot)
        {
            WriteEntry(bytes.AsSpan(at), Encoding.ASCII.GetBytes(label.PadRight(11)), 0x28, 0, 0, DateTime.Now);
            at += VvfatGeometry.DirEntrySize;
        }
        else
        {
            WriteEntry(bytes.AsSpan(at), Encoding.ASCII.GetBytes(".          "), 0x10, selfCluster, 0, dir.LastWriteTime);
            WriteEntry(bytes.AsSpan(at + VvfatGeometry.DirEntrySize), Encoding.ASCII.GetBytes("..         "), 0x10, parentCluster, 0, dir.LastWriteTime);
            at += 2 * VvfatGeometry.DirEntrySize;
        }

        foreach (var (info, sn, ln) in names)
        {
            int cluster;
            long size = 0;
            byte attr;
            if (info is DirectoryInfo sub)
            {
                // ".." of a directory in the root names cluster 0, as FAT wants (FAT32 too).
                string subRel = rel + info.Name + "/";
                cluster = Directory(sub, label, isRoot ? 0 : selfCluster, isRoot: false, ancestors, subRel).Extent.FirstCluster;
                attr = 0x10;
                _entries[subRel] = new FatServedEntry(sub.FullName, cluster, 0, IsDirectory: true);
            }
            else
            {
                var f = (FileInfo)info;
                // A link is served as what it points at (its size, its time).
                if (f.LinkTarget != null && f.ResolveLinkTarget(returnFinalTarget: true) is FileInfo target)
                    f = target;
                size = f.Length;
                if (size > uint.MaxValue)
                    throw new BlockException(Errno.EFBIG, $"File {f.FullName} is too large for FAT ({size} bytes)");
                cluster = size == 0 ? 0 : Allocate(size, f.FullName).FirstCluster;
                attr = 0x20;
                _entries[rel + info.Name] = new FatServedEntry(info.FullName, cluster, (uint)size, IsDirectory: false);
            }

            ln.CopyTo(bytes.AsSpan(at));
            at += ln.Length;
            WriteEntry(bytes.AsSpan(at), sn, attr, cluster, (uint)size, Resolved(info).LastWriteTime);
            at += VvfatGeometry.DirEntrySize;
        }

        return (bytes, self!);
    }

    private static FileSystemInfo Resolved(FileSystemInfo i) =>
        i.LinkTarget != null && i.ResolveLinkTarget(returnFinalTarget: true) is { } t ? t : i;

    private static string RealPath(DirectoryInfo d) =>
        d.LinkTarget != null && d.ResolveLinkTarget(returnFinalTarget: true) is { } t ? Path.GetFullPath(t.FullName) : Path.GetFullPath(d.FullName);

    /// <summary>Regular files and directories (symbolic links followed, as stat does); sockets, devices and dangling links are left out.</summary>
    private static bool Served(FileSystemInfo c)
    {
        try
        {
            if (c.LinkTarget != null)
                return c.ResolveLinkTarget(returnFinalTarget: true) is { Exists: true };
            return c is DirectoryInfo || (c.Attributes & (FileAttributes.Device | FileAttributes.ReparsePoint)) == 0;
        }
        catch (IOException)
        {
            return false;
        }
    }

    private FatExtent Allocate(long bytes, string? hostPath)
    {
        int clusters = (int)Math.Max(1, (bytes + _g.ClusterSize - 1) / _g.ClusterSize);
        if ((long)_next + clusters > _g.ClusterLimit)
        {
            double capacity = (double)_g.ClusterCount * _g.ClusterSize / (1024 * 1024);
            throw new BlockException(Errno.ENOSPC, string.Create(CultureInfo.InvariantCulture, $"Directory does not fit in FAT{_g.FatType} (capacity {capacity:F2} MB)"));
        }

        var e = new FatExtent { FirstCluster = _next, Clusters = clusters, HostPath = hostPath, Size = bytes };
        _next += clusters;
        _extents.Add(e);
        return e;
    }

    private static void WriteEntry(Span<byte> e, ReadOnlySpan<byte> shortName, byte attr, int cluster, uint size, DateTime time)
    {
        shortName[..11].CopyTo(e);
        e[11] = attr;
        ushort t = DosTime(time), d = DosDate(time);
        BinaryPrimitives.WriteUInt16LittleEndian(e[14..], t);
        BinaryPrimitives.WriteUInt16LittleEndian(e[16..], d);
        BinaryPrimitives.WriteUInt16LittleEndian(e[18..], d);
        BinaryPrimitives.WriteUInt16LittleEndian(e[20..], (ushort)(cluster >> 16));
        BinaryPrimitives.WriteUInt16LittleEndian(e[22..], t);
        BinaryPrimitives.WriteUInt16LittleEndian(e[24..], d);
        BinaryPrimitives.WriteUInt16LittleEndian(e[26..], (ushort)cluster);
        BinaryPrimitives.WriteUInt32LittleEndian(e[28..], size);
    }

    private static ushort DosTime(DateTime t) => (ushort)((t.Hour << 11) | (t.Minute << 5) | (t.Second / 2));

    /// <summary>FAT dates run from 1980; older times are clamped to its first day.</summary>
    private static ushort DosDate(DateTime t) =>
        t.Year < 1980 ? (ushort)((1 << 5) | 1) : (ushort)(((Math.Min(t.Year, 2107) - 1980) << 9) | (t.Month << 5) | t.Day);
}
