using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using SharpBlock.Errors;

namespace SharpBlock.Drivers.Format.Dmg;

/// <summary>
/// The chunks of every mish table an image names, in file order, absolute (sector and byte offsets resolved),
/// each checked against QEMU's limits and, beyond QEMU, against the file before any read trusts it.
/// </summary>
internal sealed class DmgChunkTable
{
    private readonly List<DmgChunkEntry> _chunks = [];

    public IReadOnlyList<DmgChunkEntry> Chunks => _chunks;

    /// <summary>The largest stored bytes and sectors of one data chunk: the read buffers' sizes.</summary>
    public ulong MaxStored { get; private set; }

    public ulong MaxSectors { get; private set; }

    /// <summary>
    /// Adds the chunks of one resource. Anything that is not a mish table, or is shorter than one with a
    /// chunk, is skipped, as QEMU skips it; so are entries of a type QEMU does not read (comments, terminators).
    /// </summary>
    public void AddMish(ReadOnlySpan<byte> b, long fileLength)
    {
        if (b.Length < DmgMish.Size + DmgChunkEntry.Size || BinaryPrimitives.ReadUInt32BigEndian(b) != DmgLayout.MishMagic)
            return;
        var mish = DmgMish.Read(b);
        int count = (b.Length - DmgMish.Size) / DmgChunkEntry.Size;
        for (int i = 0; i < count; i++)
        {
            var e = DmgChunkEntry.Read(b[(DmgMish.Size + (i * DmgChunkEntry.Size))..]);
            if (!DmgLayout.IsKnownType(e.Type))
                continue;
            int index = _chunks.Count;
            if (!DmgLayout.IsZeroType(e.Type) && e.SectorCount > DmgLayout.MaxChunkSectors)
                throw Invalid($"sector count {e.SectorCount} for chunk {index} is larger than max ({DmgLayout.MaxChunkSectors})");
            if (e.Length > DmgLayout.MaxChunkLength)
                throw Invalid($"length {e.Length} for chunk {index} is larger than max ({DmgLayout.MaxChunkLength})");
            ulong sector = e.Sector + mish.FirstSector;
            ulong offset = e.Offset + mish.DataOffset;
            if (sector < e.Sector || offset < e.Offset || sector + e.SectorCount < sector)
                throw Invalid($"chunk {index} overflows (sector {e.Sector} + {mish.FirstSector}, offset {e.Offset} + {mish.DataOffset})");
            if (!DmgLayout.IsZeroType(e.Type) && (offset > (ulong)fileLength || e.Length > (ulong)fileLength - offset))
                throw Invalid($"chunk {index} data (offset {offset}, length {e.Length}) lies beyond the end of the file ({fileLength} bytes)");
            var c = e with { Sector = sector, Offset = offset };
            _chunks.Add(c);
            if (DmgLayout.IsZeroType(e.Type))
                continue;
            MaxStored = Math.Max(MaxStored, e.Length);
            ulong sectors = e.Type == DmgLayout.ChunkRaw ? (e.Length + DmgLayout.SectorSize - 1) / DmgLayout.SectorSize : e.SectorCount;
            MaxSectors = Math.Max(MaxSectors, Math.Max(sectors, e.SectorCount));
        }
    }

    /// <summary>
    /// The resource fork as QEMU reads it: its header (u32 data offset, which must be 0x100, u32 map offset,
    /// u32 data length, u32 map length), then from 0x100 on a run of resources, each a u32 length and that many
    /// bytes; the map is not needed to find them.
    /// </summary>
    public void AddResourceFork(ReadOnlySpan<byte> fork, long fileLength)
    {
        if (fork.Length < DmgLayout.ResourceDataOffset || BinaryPrimitives.ReadUInt32BigEndian(fork) != DmgLayout.ResourceDataOffset)
            throw Invalid("resource fork does not start with its data offset 0x100");
        ulong dataLength = BinaryPrimitives.ReadUInt32BigEndian(fork[8..]);
        if (dataLength == 0 || dataLength > (ulong)fork.Length - DmgLayout.ResourceDataOffset)
            throw Invalid(string.Create(CultureInfo.InvariantCulture, $"resource fork data ({dataLength} bytes) does not fit in the fork ({fork.Length} bytes)"));
        var data = fork.Slice(DmgLayout.ResourceDataOffset, (int)dataLength);
        while (data.Length > 0)
        {
            if (data.Length < 4)
                throw Invalid("resource fork ends inside a resource's length");
            uint n = BinaryPrimitives.ReadUInt32BigEndian(data);
            if (n == 0 || n > data.Length - 4)
                throw Invalid(string.Create(CultureInfo.InvariantCulture, $"resource of {n} bytes does not fit in the resource fork"));
            AddMish(data.Slice(4, (int)n), fileLength);
            data = data[(4 + (int)n)..];
        }
    }

    /// <summary>The plist as QEMU reads it: every &lt;data&gt; element's base64 is one candidate mish table.</summary>
    public void AddPlist(ReadOnlySpan<byte> xml, long fileLength)
    {
        ReadOnlySpan<byte> open = "<data>"u8, close = "</data>"u8;
        while (true)
        {
            int at = xml.IndexOf(open);
            if (at < 0)
                return;
            xml = xml[(at + open.Length)..];
            int end = xml.IndexOf(close);
            if (end < 0)
                throw Invalid("plist <data> element has no end");
            AddMish(Base64(xml[..end]), fileLength);
            xml = xml[(end + close.Length)..];
        }
    }

    /// <summary>Base64 with whatever is not of its alphabet skipped (line breaks and tabs in a plist).</summary>
    private static byte[] Base64(ReadOnlySpan<byte> text)
    {
        var sb = new StringBuilder(text.Length);
        foreach (byte c in text)
        {
            if (char.IsAsciiLetterOrDigit((char)c) || c is (byte)'+' or (byte)'/')
                sb.Append((char)c);
        }

        while (sb.Length % 4 != 0)
        {
            if (sb.Length % 4 == 1)
                sb.Length--;
            else
                sb.Append('=');
        }

        return Convert.FromBase64String(sb.ToString());
    }

    /// <summary>The chunk holding <paramref name="sector"/>, or -1 (binary search over the table sorted by <see cref="Seal"/>).</summary>
    public int Find(ulong sector)
    {
        int lo = 0, hi = _chunks.Count - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            var c = _chunks[mid];
            if (sector < c.Sector)
                hi = mid - 1;
            else if (sector >= c.Sector + c.SectorCount)
                lo = mid + 1;
            else
                return mid;
        }

        return -1;
    }

    /// <summary>Orders the chunks by first sector, so every lookup is a binary search however hostile the tables.</summary>
    public void Seal() => _chunks.Sort(static (a, b) => a.Sector.CompareTo(b.Sector));

    internal static BlockException Invalid(string why) => new(Errno.EINVAL, "dmg: " + why);
}
