using System.Buffers.Binary;
using System.Text;
using SharpBlock.Errors;

namespace SharpBlock.Drivers.Protocol.Vvfat;

/// <summary>A file or directory found on the disk as the guest left it, with its cluster chain.</summary>
internal sealed record FatFoundEntry(int FirstCluster, uint Size, bool IsDirectory, int[] Chain, DateTime Modified);

/// <summary>
/// Reads back the volume a guest has written to: the boot sector (which must still describe our layout),
/// the first FAT, and every directory, long names included. Whatever cannot be mapped onto host files (a
/// changed layout, chains that loop, cross, leave the volume or are shorter than their file, names the host
/// cannot hold) is refused with the reason, so that nothing is written back from a volume we misread.
/// </summary>
internal sealed class FatVolumeReader
{
    private readonly VvfatGeometry _g;
    private readonly Func<long, Memory<byte>, ValueTask> _read;
    private readonly Dictionary<string, FatFoundEntry> _found = new(StringComparer.Ordinal);
    private readonly HashSet<int> _used = [];
    private byte[] _fat = [];

    private FatVolumeReader(VvfatGeometry g, Func<long, Memory<byte>, ValueTask> read)
    {
        _g = g;
        _read = read;
    }

    /// <summary>Every file ("a/b.txt") and directory ("a/") on the volume.</summary>
    public static async ValueTask<Dictionary<string, FatFoundEntry>> ReadAsync(VvfatGeometry g, byte[] ourBootSector, Func<long, Memory<byte>, ValueTask> read)
    {
        var r = new FatVolumeReader(g, read);
        byte[] boot = new byte[VvfatGeometry.SectorSize];
        await read(g.Hidden * (long)VvfatGeometry.SectorSize, boot).ConfigureAwait(false);
        // The parameter block (bytes 11 to 35, and FAT32's up to the root cluster) must be ours: a guest that
        // reformatted the disk has a volume we cannot lay over the directory.
        int bpbEnd = g.FatType == 32 ? 48 : 36;
        if (!boot.AsSpan(11, bpbEnd - 11).SequenceEqual(ourBootSector.AsSpan(11, bpbEnd - 11)))
            throw Refused("the boot sector no longer describes the volume SharpBlock laid out (was it reformatted?)");
        r._fat = new byte[g.SectorsPerFat * VvfatGeometry.SectorSize];
        await read(g.FatStart * VvfatGeometry.SectorSize, r._fat).ConfigureAwait(false);
        byte[] root;
        if (g.FatType == 32)
        {
            int rootCluster = (int)BinaryPrimitives.ReadUInt32LittleEndian(boot.AsSpan(44));
            root = await r.ReadChainAsync(r.Chain(rootCluster, "the root directory")).ConfigureAwait(false);
        }
        else
        {
            root = new byte[g.RootSectors * VvfatGeometry.SectorSize];
            await read(g.RootStart * VvfatGeometry.SectorSize, root).ConfigureAwait(false);
        }

        await r.WalkAsync(root, "", 0).ConfigureAwait(false);
        return r._found;
    }

    private static BlockException Refused(string why) =>
        new(Errno.EIO, "vvfat: cannot write the disk back into the directory: " + why);

    private async ValueTask WalkAsync(byte[] dir, string rel, int depth)
    {
        if (depth > 64)
            throw Refused($"directories nested too deeply at {rel}");
        var lfn = new char[20 * 13];
        int lfnSlots = 0;
        byte lfnSum = 0;
        for (int at = 0; at + VvfatGeometry.DirEntrySize <= dir.Length; at += VvfatGeometry.DirEntrySize)
        {
            var e = dir.AsSpan(at, VvfatGeometry.DirEntrySize);
            if (e[0] == 0)
                break;
            if (e[0] == 0xe5)
            {
                lfnSlots = 0;
                continue;
            }

            byte attr = e[11];
            if (attr == 0x0f)
            {
                int seq = e[0] & 0x3f;
                if ((e[0] & 0x40) != 0)
                {
                    lfnSlots = seq;
                    Array.Fill(lfn, '\0');
                }

                if (seq < 1 || seq > 20)
                {
                    lfnSlots = 0;
                    continue;
                }

                lfnSum = e[13];
                ReadOnlySpan<int> places = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];
                for (int c = 0; c < 13; c++)
                    lfn[((seq - 1) * 13) + c] = (char)BinaryPrimitives.ReadUInt16LittleEndian(e[places[c]..]);
                continue;
            }

            string? longName = null;
            if (lfnSlots > 0 && FatNames.Checksum(e) == lfnSum)
            {
                var name = new string(lfn, 0, lfnSlots * 13);
                int end = name.IndexOf('\0', StringComparison.Ordinal);
                longName = end >= 0 ? name[..end] : name.TrimEnd('\uffff');
            }

            lfnSlots = 0;
            if ((attr & 0x08) != 0)
                continue;
            string shortName = ShortName(e);
            if (shortName is "." or "..")
                continue;
            string fileName = longName ?? shortName;
            if (fileName.Length == 0 || fileName is "." or ".." || fileName.Contains('/', StringComparison.Ordinal) || fileName.Contains('\0', StringComparison.Ordinal))
                throw Refused($"the name '{fileName}' in {(rel.Length == 0 ? "the root" : rel)} cannot be a host file name");
            int first = BinaryPrimitives.ReadUInt16LittleEndian(e[26..]) | (_g.FatType == 32 ? BinaryPrimitives.ReadUInt16LittleEndian(e[20..]) << 16 : 0);
            uint size = BinaryPrimitives.ReadUInt32LittleEndian(e[28..]);
            var modified = DosTime(BinaryPrimitives.ReadUInt16LittleEndian(e[24..]), BinaryPrimitives.ReadUInt16LittleEndian(e[22..]));
            bool isDir = (attr & 0x10) != 0;
            string path = rel + fileName + (isDir ? "/" : "");
            if (_found.ContainsKey(path))
                throw Refused($"{path} is on the disk twice");
            if (isDir)
            {
                int[] chain = Chain(first, path);
                _found[path] = new FatFoundEntry(first, 0, true, chain, modified);
                await WalkAsync(await ReadChainAsync(chain).ConfigureAwait(false), path, depth + 1).ConfigureAwait(false);
            }
            else
            {
                int[] chain = size == 0 && first == 0 ? [] : Chain(first, path);
                if ((long)chain.Length * _g.ClusterSize < size)
                    throw Refused($"{path} is {size} bytes but its cluster chain holds only {(long)chain.Length * _g.ClusterSize}");
                _found[path] = new FatFoundEntry(first, size, false, chain, modified);
            }
        }
    }

    private static string ShortName(ReadOnlySpan<byte> e)
    {
        Span<byte> raw = stackalloc byte[11];
        e[..11].CopyTo(raw);
        if (raw[0] == 0x05)
            raw[0] = 0xe5;
        string stem = Encoding.Latin1.GetString(raw[..8]).TrimEnd(' ');
        string ext = Encoding.Latin1.GetString(raw[8..]).TrimEnd(' ');
        // Windows NT's case bits: an all-lower-case stem or extension stored upper-case.
        if ((e[12] & 0x08) != 0)
            stem = stem.ToLowerInvariant();
        if ((e[12] & 0x10) != 0)
            ext = ext.ToLowerInvariant();
        return ext.Length == 0 ? stem : stem + "." + ext;
    }

    private int[] Chain(int first, string what)
    {
        var chain = new List<int>();
        uint eocFrom = _g.FatType switch { 12 => 0xff8, 16 => 0xfff8, _ => 0x0ffffff8 };
        int c = first;
        while (true)
        {
            if (c < 2 || c >= _g.ClusterLimit)
                throw Refused($"the cluster chain of {what} leaves the volume (cluster {c})");
            if (!_used.Add(c))
                throw Refused($"cluster {c} of {what} is used twice");
            chain.Add(c);
            uint next = Entry(c);
            if (next >= eocFrom)
                return [.. chain];
            c = (int)next;
        }
    }

    private uint Entry(int c) => _g.FatType switch
    {
        12 => (c & 1) == 0
            ? (uint)(_fat[c * 3 / 2] | ((_fat[(c * 3 / 2) + 1] & 0x0f) << 8))
            : (uint)((_fat[c * 3 / 2] >> 4) | (_fat[(c * 3 / 2) + 1] << 4)),
        16 => BinaryPrimitives.ReadUInt16LittleEndian(_fat.AsSpan(c * 2)),
        _ => BinaryPrimitives.ReadUInt32LittleEndian(_fat.AsSpan(c * 4)) & 0x0fffffff,
    };

    private async ValueTask<byte[]> ReadChainAsync(int[] chain)
    {
        byte[] bytes = new byte[chain.Length * _g.ClusterSize];
        for (int i = 0; i < chain.Length; i++)
            await _read(ClusterOffset(_g, chain[i]), bytes.AsMemory(i * _g.ClusterSize, _g.ClusterSize)).ConfigureAwait(false);
        return bytes;
    }

    public static long ClusterOffset(VvfatGeometry g, int cluster) =>
        (g.DataStart * VvfatGeometry.SectorSize) + ((long)(cluster - 2) * g.ClusterSize);

    private static DateTime DosTime(ushort date, ushort time)
    {
        try
        {
            return new DateTime(1980 + (date >> 9), Math.Max(1, (date >> 5) & 15), Math.Max(1, date & 31), (time >> 11) % 24, ((time >> 5) & 63) % 60, (time & 31) * 2 % 60, DateTimeKind.Local);
        }
        catch (ArgumentOutOfRangeException)
        {
            return DateTime.Now;
        }
    }
}
