using System.Buffers.Binary;
using System.Text;

namespace SharpBlock.Drivers.Protocol.Vvfat;

/// <summary>
/// The fixed sectors of the disk: the MBR (hard disks), the boot sector with its BIOS parameter block, on
/// FAT32 the FSInfo sector and the backup copies, and the FAT itself for the clusters the tree uses.
/// </summary>
internal static class FatLayout
{
    public static byte[] Mbr(VvfatGeometry g, uint serial)
    {
        byte[] s = new byte[VvfatGeometry.SectorSize];
        BinaryPrimitives.WriteUInt32LittleEndian(s.AsSpan(0x1b8), serial);
        var p = s.AsSpan(0x1be, 16);
        p[0] = 0x80;
        Chs(g, g.Hidden, p[1..4]);
        // QEMU's partition types: FAT12, FAT16 over 32 MiB, FAT32 with CHS addressing.
        p[4] = g.FatType switch { 12 => 0x01, 16 => 0x06, _ => 0x0b };
        Chs(g, g.TotalSectors - 1, p[5..8]);
        BinaryPrimitives.WriteUInt32LittleEndian(p[8..], (uint)g.Hidden);
        BinaryPrimitives.WriteUInt32LittleEndian(p[12..], (uint)g.PartitionSectors);
        s[510] = 0x55;
        s[511] = 0xaa;
        return s;
    }

    /// <summary>CHS of a sector, with cylinders past 1023 shown as the largest address, as partitioners do.</summary>
    private static void Chs(VvfatGeometry g, long lba, Span<byte> chs)
    {
        long cyl = lba / (g.Heads * g.SectorsPerTrack);
        int head = (int)(lba / g.SectorsPerTrack % g.Heads);
        int sector = (int)(lba % g.SectorsPerTrack) + 1;
        if (cyl > 1023)
        {
            chs[0] = 0xff;
            chs[1] = 0xff;
            chs[2] = 0xff;
            return;
        }

        chs[0] = (byte)head;
        chs[1] = (byte)((uint)sector | (uint)((cyl >> 2) & 0xc0));
        chs[2] = (byte)cyl;
    }

    public static byte[] BootSector(VvfatGeometry g, uint serial, string label, int rootCluster)
    {
        byte[] s = new byte[VvfatGeometry.SectorSize];
        s[0] = 0xeb;
        s[1] = 0x3e;
        s[2] = 0x90;
        Encoding.ASCII.GetBytes("MSWIN4.1").CopyTo(s, 3);
        BinaryPrimitives.WriteUInt16LittleEndian(s.AsSpan(11), VvfatGeometry.SectorSize);
        s[13] = (byte)g.SectorsPerCluster;
        BinaryPrimitives.WriteUInt16LittleEndian(s.AsSpan(14), (ushort)g.ReservedSectors);
        s[16] = 2;
        BinaryPrimitives.WriteUInt16LittleEndian(s.AsSpan(17), (ushort)g.RootEntries);
        if (g.PartitionSectors < 0x10000 && g.FatType != 32)
            BinaryPrimitives.WriteUInt16LittleEndian(s.AsSpan(19), (ushort)g.PartitionSectors);
        else
            BinaryPrimitives.WriteUInt32LittleEndian(s.AsSpan(32), (uint)g.PartitionSectors);
        s[21] = g.Media;
        BinaryPrimitives.WriteUInt16LittleEndian(s.AsSpan(24), (ushort)g.SectorsPerTrack);
        BinaryPrimitives.WriteUInt16LittleEndian(s.AsSpan(26), (ushort)g.Heads);
        BinaryPrimitives.WriteUInt32LittleEndian(s.AsSpan(28), (uint)g.Hidden);
        int ext = 36;
        if (g.FatType == 32)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(s.AsSpan(36), (uint)g.SectorsPerFat);
            BinaryPrimitives.WriteUInt32LittleEndian(s.AsSpan(44), (uint)rootCluster);
            BinaryPrimitives.WriteUInt16LittleEndian(s.AsSpan(48), 1);
            BinaryPrimitives.WriteUInt16LittleEndian(s.AsSpan(50), 6);
            ext = 64;
        }
        else
        {
            BinaryPrimitives.WriteUInt16LittleEndian(s.AsSpan(22), (ushort)g.SectorsPerFat);
        }

        s[ext] = g.Floppy ? (byte)0x00 : (byte)0x80;
        s[ext + 2] = 0x29;
        BinaryPrimitives.WriteUInt32LittleEndian(s.AsSpan(ext + 3), serial);
        Encoding.ASCII.GetBytes(label.PadRight(11)).CopyTo(s, ext + 7);
        Encoding.ASCII.GetBytes(g.FatType == 12 ? "FAT12   " : g.FatType == 16 ? "FAT16   " : "FAT32   ").CopyTo(s, ext + 18);
        s[510] = 0x55;
        s[511] = 0xaa;
        return s;
    }

    /// <summary>FAT32's FSInfo: the free count and next free cluster hint.</summary>
    public static byte[] FsInfo(VvfatGeometry g, int usedClusters)
    {
        byte[] s = new byte[VvfatGeometry.SectorSize];
        BinaryPrimitives.WriteUInt32LittleEndian(s, 0x41615252);
        BinaryPrimitives.WriteUInt32LittleEndian(s.AsSpan(484), 0x61417272);
        BinaryPrimitives.WriteUInt32LittleEndian(s.AsSpan(488), (uint)(g.ClusterCount - usedClusters));
        BinaryPrimitives.WriteUInt32LittleEndian(s.AsSpan(492), (uint)(usedClusters + 2));
        BinaryPrimitives.WriteUInt32LittleEndian(s.AsSpan(508), 0xaa550000);
        return s;
    }

    /// <summary>One copy of the FAT: each run chains to its last cluster, which ends the chain; the rest is free.</summary>
    public static byte[] Fat(VvfatGeometry g, IReadOnlyList<FatExtent> extents)
    {
        byte[] fat = new byte[g.SectorsPerFat * VvfatGeometry.SectorSize];
        uint eoc = g.EndOfChain;
        Set(g, fat, 0, (eoc & ~0xffu) | g.Media);
        Set(g, fat, 1, eoc);
        foreach (var e in extents)
        {
            for (int c = e.FirstCluster; c < e.EndCluster; c++)
                Set(g, fat, c, c == e.EndCluster - 1 ? eoc : (uint)c + 1);
        }

        return fat;
    }

    private static void Set(VvfatGeometry g, byte[] fat, int cluster, uint value)
    {
        switch (g.FatType)
        {
            case 12:
                int at = cluster * 3 / 2;
                if ((cluster & 1) == 0)
                {
                    fat[at] = (byte)value;
                    fat[at + 1] = (byte)((uint)(fat[at + 1] & 0xf0) | ((value >> 8) & 0x0f));
                }
                else
                {
                    fat[at] = (byte)((uint)(fat[at] & 0x0f) | ((value << 4) & 0xf0));
                    fat[at + 1] = (byte)(value >> 4);
                }

                break;
            case 16:
                BinaryPrimitives.WriteUInt16LittleEndian(fat.AsSpan(cluster * 2), (ushort)value);
                break;
            default:
                BinaryPrimitives.WriteUInt32LittleEndian(fat.AsSpan(cluster * 4), value);
                break;
        }
    }
}
