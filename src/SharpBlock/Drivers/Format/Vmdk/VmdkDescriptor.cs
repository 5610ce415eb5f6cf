using System.Globalization;
using System.Text;
using SharpBlock.Errors;

namespace SharpBlock.Drivers.Format.Vmdk;

/// <summary>One extent line of a descriptor: ACCESS SECTORS TYPE "FILE" [OFFSET].</summary>
public sealed record VmdkExtentLine(string Access, long Sectors, string Type, string FileName, long Offset);

/// <summary>
/// The text descriptor of a VMDK image (embedded in a sparse extent or a file of its own): CID, parentCID,
/// createType, parentFileNameHint, the extent lines and the disk database. Values are looked up the way QEMU
/// looks them up (the first occurrence of the key anywhere in the text), so we read what it reads.
/// </summary>
public sealed class VmdkDescriptor
{
    private VmdkDescriptor(string text)
    {
        Text = text;
    }

    /// <summary>The descriptor up to its first NUL (an embedded descriptor is padded with them).</summary>
    public string Text { get; private set; }

    public static VmdkDescriptor Parse(ReadOnlySpan<byte> bytes)
    {
        int nul = bytes.IndexOf((byte)0);
        if (nul >= 0)
            bytes = bytes[..nul];
        // Latin-1 keeps every byte as one char, so offsets in the text are offsets in the file.
        return new VmdkDescriptor(Encoding.Latin1.GetString(bytes));
    }

    /// <summary>The content identifier; 0 when the descriptor has none, as QEMU reads it.</summary>
    public uint Cid => ReadHex("CID");

    public uint ParentCid => ReadHex("parentCID");

    /// <summary>A quoted value: KEY="VALUE", found as QEMU finds it; null when absent or unterminated.</summary>
    public string? Quoted(string key)
    {
        int at = Text.IndexOf(key, StringComparison.Ordinal);
        if (at < 0)
            return null;
        int start = at + key.Length + 2;
        if (start >= Text.Length)
            return null;
        int end = Text.IndexOf('"', start);
        return end < 0 ? null : Text[start..end];
    }

    public string? CreateType => Quoted("createType");

    /// <summary>The parent's file name; QEMU requires the exact spelling parentFileNameHint="NAME".</summary>
    public string? ParentFileNameHint
    {
        get
        {
            const string Key = "parentFileNameHint=\"";
            int at = Text.IndexOf(Key, StringComparison.Ordinal);
            if (at < 0)
                return null;
            int start = at + Key.Length;
            int end = Text.IndexOf('"', start);
            return end < 0 ? null : Text[start..end];
        }
    }

    /// <summary>A ddb entry's value (ddb.KEY = "VALUE"), or null.</summary>
    public string? Ddb(string key)
    {
        foreach (string raw in Text.Split('\n'))
        {
            string line = raw.TrimEnd('\r').Trim();
            if (!line.StartsWith("ddb." + key, StringComparison.Ordinal))
                continue;
            string rest = line[("ddb." + key).Length..].TrimStart();
            if (!rest.StartsWith('='))
                continue;
            return rest[1..].Trim().Trim('"');
        }

        return null;
    }

    private uint ReadHex(string key)
    {
        int at = Text.IndexOf(key, StringComparison.Ordinal);
        if (at < 0)
            return 0;
        // QEMU skips the key and one character (the '='), then reads hex digits after optional blanks.
        int p = at + key.Length + 1;
        while (p < Text.Length && Text[p] is ' ' or '\t')
            p++;
        int q = p;
        while (q < Text.Length && Uri.IsHexDigit(Text[q]) && q - p < 8)
            q++;
        return q > p ? uint.Parse(Text.AsSpan(p, q - p), NumberStyles.HexNumber, CultureInfo.InvariantCulture) : 0;
    }

    /// <summary>
    /// The extent lines QEMU opens: access RW only (RDONLY and NOACCESS lines are passed over, as it does), types
    /// FLAT, SPARSE, VMFS, VMFSSPARSE; a FLAT line needs its offset. Lines that are not extent lines are skipped;
    /// a line that starts like one but is malformed is refused.
    /// </summary>
    public List<VmdkExtentLine> Extents()
    {
        var list = new List<VmdkExtentLine>();
        foreach (string raw in Text.Split('\n'))
        {
            string line = raw.TrimEnd('\r');
            int matches = ScanExtentLine(line, out var access, out long sectors, out var type, out var file, out long offset);
            if (matches < 4 || access != "RW")
                continue;
            if (type == "FLAT")
            {
                if (matches != 5 || offset < 0)
                    throw Invalid(line);
            }
            else if (type == "VMFS")
            {
                if (matches != 4)
                    throw Invalid(line);
                offset = 0;
            }
            else if (matches != 4)
            {
                throw Invalid(line);
            }

            if (sectors <= 0 || type is not ("FLAT" or "SPARSE" or "VMFS" or "VMFSSPARSE"))
                continue;
            list.Add(new VmdkExtentLine(access, sectors, type, file, offset));
        }

        return list;
    }

    private static BlockException Invalid(string line) => new(Errno.EINVAL, "Invalid extent line: " + line);

    /// <summary>Reads ACCESS SECTORS TYPE "FILE" OFFSET like a scanf: returns how many fields matched, in order.</summary>
    private static int ScanExtentLine(string line, out string access, out long sectors, out string type, out string file, out long offset)
    {
        access = type = file = "";
        sectors = offset = -1;
        int p = 0;
        if (!Word(line, ref p, out access))
            return 0;
        if (!Number(line, ref p, out sectors))
            return 1;
        if (!Word(line, ref p, out type))
            return 2;
        SkipBlanks(line, ref p);
        if (p >= line.Length || line[p] != '"')
            return 3;
        int end = line.IndexOf('"', p + 1);
        if (end < 0 || end == p + 1 || end - p - 1 > VmdkLayout.MaxExtentFileName)
            return 3;
        file = line[(p + 1)..end];
        p = end + 1;
        return Number(line, ref p, out offset) ? 5 : 4;
    }

    private static void SkipBlanks(string s, ref int p)
    {
        while (p < s.Length && char.IsWhiteSpace(s[p]))
            p++;
    }

    private static bool Word(string s, ref int p, out string word)
    {
        SkipBlanks(s, ref p);
        int start = p;
        while (p < s.Length && !char.IsWhiteSpace(s[p]) && p - start < 10)
            p++;
        word = s[start..p];
        return p > start;
    }

    private static bool Number(string s, ref int p, out long value)
    {
        SkipBlanks(s, ref p);
        int start = p;
        if (p < s.Length && s[p] is '-' or '+')
            p++;
        while (p < s.Length && char.IsAsciiDigit(s[p]))
            p++;
        if (!long.TryParse(s.AsSpan(start, p - start), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out value))
        {
            p = start;
            value = -1;
            return false;
        }

        return true;
    }

    /// <summary>Replaces the value of the CID line (the first "CID" in the text, as QEMU rewrites it).</summary>
    public void SetCid(uint cid) => SetHexLine("CID", cid);

    public void SetParentCid(uint cid) => SetHexLine("parentCID", cid);

    private void SetHexLine(string key, uint value)
    {
        int at = Text.IndexOf(key + "=", StringComparison.Ordinal);
        string hex = value.ToString("x", CultureInfo.InvariantCulture);
        if (at < 0)
            throw new BlockException(Errno.EINVAL, $"The descriptor has no {key} line");
        int start = at + key.Length + 1;
        int end = Text.IndexOf('\n', start);
        Text = Text[..start] + hex + (end < 0 ? "\n" : Text[end..]);
    }

    /// <summary>Sets (or with null removes) the parentFileNameHint line, which sits after the createType line.</summary>
    public void SetParentFileNameHint(string? name)
    {
        var lines = new List<string>(Text.Split('\n'));
        lines.RemoveAll(l => l.StartsWith("parentFileNameHint=", StringComparison.Ordinal));
        if (name != null)
        {
            int ct = lines.FindIndex(l => l.StartsWith("createType=", StringComparison.Ordinal));
            lines.Insert(ct < 0 ? Math.Min(lines.Count, 4) : ct + 1, $"parentFileNameHint=\"{name}\"");
        }

        Text = string.Join('\n', lines);
    }

    public byte[] ToBytes() => Encoding.Latin1.GetBytes(Text);

    /// <summary>The descriptor qemu-img writes for a new image, in its order and spelling.</summary>
    public static string Create(uint cid, uint parentCid, string createType, string? parentFileName, IReadOnlyList<string> extentLines,
        string hwVersion, long sizeBytes, string adapterType, string toolsVersion)
    {
        int heads = adapterType == "ide" ? 16 : 255;
        long cylinders = sizeBytes / ((long)VmdkLayout.SectorSize * 63 * heads);
        var sb = new StringBuilder();
        var ci = CultureInfo.InvariantCulture;
        sb.Append("# Disk DescriptorFile\n");
        sb.Append("version=1\n");
        sb.Append(ci, $"CID={cid:x}\n");
        sb.Append(ci, $"parentCID={parentCid:x}\n");
        sb.Append(ci, $"createType=\"{createType}\"\n");
        if (parentFileName != null)
            sb.Append(ci, $"parentFileNameHint=\"{parentFileName}\"\n");
        sb.Append('\n');
        sb.Append("# Extent description\n");
        foreach (string e in extentLines)
            sb.Append(e).Append('\n');
        sb.Append('\n');
        sb.Append("# The Disk Data Base\n");
        sb.Append("#DDB\n");
        sb.Append('\n');
        sb.Append(ci, $"ddb.virtualHWVersion = \"{hwVersion}\"\n");
        sb.Append(ci, $"ddb.geometry.cylinders = \"{cylinders}\"\n");
        sb.Append(ci, $"ddb.geometry.heads = \"{heads}\"\n");
        sb.Append("ddb.geometry.sectors = \"63\"\n");
        sb.Append(ci, $"ddb.adapterType = \"{adapterType}\"\n");
        sb.Append(ci, $"ddb.toolsVersion = \"{toolsVersion}\"\n");
        return sb.ToString();
    }
}
