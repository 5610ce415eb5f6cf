using System.Text;

namespace SharpBlock.Drivers.Protocol.Vvfat;

/// <summary>
/// Short (8.3) names and the long-name (VFAT) entries in front of them. A short name keeps the characters
/// DOS allows, upper-cased, cut to 8 + 3, with "~N" when the name had to be changed or is taken; the long
/// name holds the host name exactly (UTF-16), in 13-character slices, last slice first.
/// </summary>
internal static class FatNames
{
    private const string Allowed = "!#$%&'()-@^_`{}~";

    /// <summary>The 11 bytes of a short name unique among <paramref name="taken"/> (which it joins).</summary>
    public static byte[] ShortName(string name, HashSet<string> taken)
    {
        string trimmed = name.TrimStart('.');
        int dot = trimmed.LastIndexOf('.');
        string stem = Clean(dot > 0 ? trimmed[..dot] : trimmed);
        string ext = Clean(dot > 0 ? trimmed[(dot + 1)..] : "");
        bool lossy = stem.Length > 8 || ext.Length > 3 || stem.Length == 0
            || !string.Equals(Display(stem, ext), name, StringComparison.OrdinalIgnoreCase);
        if (stem.Length == 0)
            stem = "_";
        if (ext.Length > 3)
            ext = ext[..3];
        string candidate = Pad(stem.Length > 8 ? stem[..8] : stem, ext);
        if (!lossy && taken.Add(candidate))
            return Encoding.ASCII.GetBytes(candidate);
        for (int n = 1; ; n++)
        {
            string tail = "~" + n.ToString(System.Globalization.CultureInfo.InvariantCulture);
            candidate = Pad(stem[..Math.Min(stem.Length, 8 - tail.Length)] + tail, ext);
            if (taken.Add(candidate))
                return Encoding.ASCII.GetBytes(candidate);
        }
    }

    /// <summary>Whether the host name reads back exactly from the short name alone (then no long name is needed).</summary>
    public static bool FitsShortName(string name, ReadOnlySpan<byte> shortName)
    {
        string stem = Encoding.ASCII.GetString(shortName[..8]).TrimEnd(' ');
        string ext = Encoding.ASCII.GetString(shortName[8..]).TrimEnd(' ');
        return Display(stem, ext) == name;
    }

    /// <summary>The long-name entries for <paramref name="name"/>, in directory order (the last slice first).</summary>
    public static byte[] LongNameEntries(string name, ReadOnlySpan<byte> shortName)
    {
        byte sum = Checksum(shortName);
        int slices = (name.Length + 12) / 13;
        byte[] entries = new byte[slices * VvfatGeometry.DirEntrySize];
        for (int i = 0; i < slices; i++)
        {
            var e = entries.AsSpan((slices - 1 - i) * VvfatGeometry.DirEntrySize, VvfatGeometry.DirEntrySize);
            e[0] = (byte)((i + 1) | (i == slices - 1 ? 0x40 : 0));
            e[11] = 0x0f;
            e[13] = sum;
            ReadOnlySpan<int> places = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];
            for (int c = 0; c < 13; c++)
            {
                int at = (i * 13) + c;
                // After the name a NUL, then 0xFFFF padding.
                ushort ch = at < name.Length ? name[at] : at == name.Length ? (ushort)0 : (ushort)0xffff;
                System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(e[places[c]..], ch);
            }
        }

        return entries;
    }

    public static byte Checksum(ReadOnlySpan<byte> shortName)
    {
        byte sum = 0;
        foreach (byte b in shortName[..11])
            sum = (byte)(((sum & 1) << 7) + (sum >> 1) + b);
        return sum;
    }

    private static string Clean(string part)
    {
        var sb = new StringBuilder(part.Length);
        foreach (char c in part)
        {
            if (c is ' ' or '.')
                continue;
            char u = char.ToUpperInvariant(c);
            sb.Append((u is >= 'A' and <= 'Z') || (u is >= '0' and <= '9') || Allowed.Contains(u, StringComparison.Ordinal) ? u : '_');
        }

        return sb.ToString();
    }

    private static string Pad(string stem, string ext) => stem.PadRight(8) + ext.PadRight(3);

    private static string Display(string stem, string ext) => ext.Length == 0 ? stem : stem + "." + ext;
}
