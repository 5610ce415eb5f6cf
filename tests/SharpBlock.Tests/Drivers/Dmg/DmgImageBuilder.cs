using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using ICSharpCode.SharpZipLib.BZip2;

namespace SharpBlock.Tests.Drivers.Dmg;

/// <summary>
/// Writes UDIF images from the format description, independently of the reader: the data fork (chunks in
/// order), two mish tables (the second with its own first sector, and with relativeData its own data offset, which
/// QEMU honours and dmg2img does not), each with a comment and a terminator entry, then a plist or a resource fork, then the koly trailer.
/// Shared with the interop tests by a link in their project file.
/// </summary>
internal static class DmgImageBuilder
{
    public const uint Zero = 0, Raw = 1, Ignore = 2, Zlib = 0x80000005, Bzip2 = 0x80000006;

    /// <summary>An image of <paramref name="disk"/> (whole sectors) cut into chunks of the given types and sector counts, in turn.</summary>
    public static byte[] Build(byte[] disk, (uint Type, int Sectors)[] plan, bool resourceFork, bool relativeData = false)
    {
        var data = new MemoryStream();
        var tables = new List<byte[]>();
        int sectors = disk.Length / 512;
        int half = plan.Length / 2;
        int sector = 0;
        foreach (var part in (ReadOnlyMemory<(uint, int)>[])[plan.AsMemory(0, half), plan.AsMemory(half)])
        {
            int first = sector;
            long dataStart = relativeData ? data.Length : 0;
            var entries = new List<(uint Type, long Sector, long Count, long Offset, long Length)>();
            foreach (var (type, n) in part.Span)
            {
                int count = Math.Min(n, sectors - sector);
                if (count <= 0)
                    break;
                byte[] stored = Store(type, disk.AsSpan(sector * 512, count * 512));
                entries.Add((type, sector - first, count, data.Length - dataStart, stored.Length));
                data.Write(stored);
                sector += count;
            }

            entries.Add((0x7ffffffe, sector - first, 0, data.Length - dataStart, 0));
            entries.Add((0xffffffff, sector - first, 0, data.Length - dataStart, 0));
            byte[] t = new byte[204 + (entries.Count * 40)];
            BinaryPrimitives.WriteUInt32BigEndian(t, 0x6d697368);
            BinaryPrimitives.WriteUInt32BigEndian(t.AsSpan(4), 1);
            BinaryPrimitives.WriteUInt64BigEndian(t.AsSpan(8), (ulong)first);
            BinaryPrimitives.WriteUInt64BigEndian(t.AsSpan(16), (ulong)(sector - first));
            BinaryPrimitives.WriteUInt64BigEndian(t.AsSpan(24), (ulong)dataStart);
            BinaryPrimitives.WriteUInt32BigEndian(t.AsSpan(200), (uint)entries.Count);
            for (int i = 0; i < entries.Count; i++)
            {
                var e = t.AsSpan(204 + (i * 40));
                BinaryPrimitives.WriteUInt32BigEndian(e, entries[i].Type);
                BinaryPrimitives.WriteUInt64BigEndian(e[8..], (ulong)entries[i].Sector);
                BinaryPrimitives.WriteUInt64BigEndian(e[16..], (ulong)entries[i].Count);
                BinaryPrimitives.WriteUInt64BigEndian(e[24..], (ulong)entries[i].Offset);
                BinaryPrimitives.WriteUInt64BigEndian(e[32..], (ulong)entries[i].Length);
            }

            tables.Add(t);
        }

        long metaAt = data.Length;
        byte[] meta = resourceFork ? ResourceFork(tables) : Plist(tables);
        data.Write(meta);
        byte[] koly = new byte[512];
        BinaryPrimitives.WriteUInt32BigEndian(koly, 0x6b6f6c79);
        BinaryPrimitives.WriteUInt32BigEndian(koly.AsSpan(4), 4);
        BinaryPrimitives.WriteUInt32BigEndian(koly.AsSpan(8), 512);
        BinaryPrimitives.WriteUInt64BigEndian(koly.AsSpan(0x20), (ulong)metaAt); // data fork length
        BinaryPrimitives.WriteUInt64BigEndian(koly.AsSpan(resourceFork ? 0x28 : 0xd8), (ulong)metaAt);
        BinaryPrimitives.WriteUInt64BigEndian(koly.AsSpan(resourceFork ? 0x30 : 0xe0), (ulong)meta.Length);
        BinaryPrimitives.WriteUInt32BigEndian(koly.AsSpan(0x1e8), 1); // image variant
        BinaryPrimitives.WriteUInt64BigEndian(koly.AsSpan(0x1ec), (ulong)sectors);
        data.Write(koly);
        return data.ToArray();
    }

    /// <summary>The source with the zero and ignore chunks' sectors cleared (what the image holds).</summary>
    public static byte[] Expected(byte[] disk, (uint Type, int Sectors)[] plan)
    {
        byte[] e = (byte[])disk.Clone();
        int s = 0;
        foreach (var (type, n) in plan)
        {
            int count = Math.Min(n, (disk.Length / 512) - s);
            if (type is Zero or Ignore)
                e.AsSpan(s * 512, count * 512).Clear();
            s += count;
        }

        return e;
    }

    private static byte[] Store(uint type, ReadOnlySpan<byte> piece)
    {
        var ms = new MemoryStream();
        switch (type)
        {
            case Raw:
                return piece.ToArray();
            case Zlib:
                using (var z = new ZLibStream(ms, CompressionLevel.Optimal, leaveOpen: true))
                    z.Write(piece);
                return ms.ToArray();
            case Bzip2:
                using (var b = new BZip2OutputStream(ms) { IsStreamOwner = false })
                    b.Write(piece);
                return ms.ToArray();
            default:
                return [];
        }
    }

    private static byte[] Plist(List<byte[]> tables)
    {
        var sb = new StringBuilder();
        sb.Append("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n");
        sb.Append("<plist version=\"1.0\">\n<dict>\n\t<key>resource-fork</key>\n\t<dict>\n\t\t<key>blkx</key>\n\t\t<array>\n");
        for (int i = 0; i < tables.Count; i++)
        {
            sb.Append("\t\t\t<dict>\n\t\t\t\t<key>Attributes</key>\n\t\t\t\t<string>0x0050</string>\n\t\t\t\t<key>CFName</key>\n\t\t\t\t<string>part ").Append(i).Append("</string>\n\t\t\t\t<key>Data</key>\n\t\t\t\t<data>\n");
            string b64 = Convert.ToBase64String(tables[i]);
            for (int at = 0; at < b64.Length; at += 52)
                sb.Append("\t\t\t\t").Append(b64, at, Math.Min(52, b64.Length - at)).Append('\n');
            sb.Append("\t\t\t\t</data>\n\t\t\t\t<key>ID</key>\n\t\t\t\t<string>").Append(i).Append("</string>\n\t\t\t\t<key>Name</key>\n\t\t\t\t<string>part ").Append(i).Append("</string>\n\t\t\t</dict>\n");
        }

        sb.Append("\t\t</array>\n\t</dict>\n</dict>\n</plist>\n");
        return Encoding.UTF8.GetBytes(sb.ToString());
    }

    /// <summary>A resource fork: its 16-byte header (data offset 0x100, map offset, data length, map length), then [u32 length][mish] runs.</summary>
    private static byte[] ResourceFork(List<byte[]> tables)
    {
        var body = new MemoryStream();
        Span<byte> n = stackalloc byte[4];
        foreach (var t in tables)
        {
            BinaryPrimitives.WriteUInt32BigEndian(n, (uint)t.Length);
            body.Write(n);
            body.Write(t);
        }

        byte[] fork = new byte[0x100 + body.Length + 0x100];
        BinaryPrimitives.WriteUInt32BigEndian(fork, 0x100);
        BinaryPrimitives.WriteUInt32BigEndian(fork.AsSpan(4), 0x100 + (uint)body.Length); // map offset
        BinaryPrimitives.WriteUInt32BigEndian(fork.AsSpan(8), (uint)body.Length);
        BinaryPrimitives.WriteUInt32BigEndian(fork.AsSpan(12), 0x100); // map length (the map itself is left empty)
        body.ToArray().CopyTo(fork, 0x100);
        return fork;
    }
}
