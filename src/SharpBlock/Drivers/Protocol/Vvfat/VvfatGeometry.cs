using SharpBlock.Errors;

namespace SharpBlock.Drivers.Protocol.Vvfat;

/// <summary>
/// The disk QEMU's vvfat presents, as QEMU 7.2 lays it out: a hard disk of 16 heads and 63 sectors per track
/// (64 cylinders for FAT12, 1024 for FAT16 and FAT32) with one partition from sector 63, or an unpartitioned
/// floppy of 80 cylinders and 2 heads (18 sectors per track for an explicit FAT12, 36 otherwise); 8 KiB
/// clusters on FAT12/16, two FATs and a 512-entry root directory. FAT32 (broken in QEMU 7.2, so not copied
/// from it) gets 4 KiB clusters, 32 reserved sectors with FSInfo and a backup boot sector, and its root
/// directory in a cluster chain.
/// </summary>
internal sealed record VvfatGeometry
{
    public const int SectorSize = 512;
    public const int DirEntrySize = 32;

    public int FatType { get; private init; }
    public bool Floppy { get; private init; }
    public int Cylinders { get; private init; }
    public int Heads { get; private init; }
    public int SectorsPerTrack { get; private init; }

    /// <summary>Sectors before the boot sector (the MBR's track on a hard disk).</summary>
    public int Hidden { get; private init; }
    public int SectorsPerCluster { get; private init; }
    public int ReservedSectors { get; private init; }
    public int RootEntries { get; private init; }
    public int SectorsPerFat { get; private init; }
    public int ClusterCount { get; private init; }

    public long TotalSectors => (long)Cylinders * Heads * SectorsPerTrack;
    public long PartitionSectors => TotalSectors - Hidden;
    public int ClusterSize => SectorsPerCluster * SectorSize;
    public int RootSectors => RootEntries * DirEntrySize / SectorSize;
    public long FatStart => Hidden + ReservedSectors;
    public long RootStart => FatStart + (2L * SectorsPerFat);
    public long DataStart => RootStart + RootSectors;
    public byte Media => Floppy ? (byte)0xf0 : (byte)0xf8;

    /// <summary>The last cluster number plus one.</summary>
    public int ClusterLimit => ClusterCount + 2;

    /// <summary>fat-type 0 (absent) means FAT16 on a hard disk and FAT12 on a floppy, as QEMU chooses.</summary>
    public static VvfatGeometry For(int fatType, bool floppy)
    {
        if (fatType is not (0 or 12 or 16 or 32))
            throw new BlockException(Errno.EINVAL, "Valid FAT types are only 12, 16 and 32");
        int sectorsPerTrack = floppy ? (fatType == 12 ? 18 : 36) : 63;
        if (fatType == 0)
            fatType = floppy ? 12 : 16;
        var g = new VvfatGeometry
        {
            FatType = fatType,
            Floppy = floppy,
            Cylinders = floppy ? 80 : fatType == 12 ? 64 : 1024,
            Heads = floppy ? 2 : 16,
            SectorsPerTrack = sectorsPerTrack,
            Hidden = floppy ? 0 : 63,
            SectorsPerCluster = fatType == 32 ? 8 : 16,
            ReservedSectors = fatType == 32 ? 32 : 1,
            RootEntries = fatType == 32 ? 0 : 512,
        };

        // QEMU sizes the FAT for the clusters the area after the root directory would hold without the FATs.
        long free = g.PartitionSectors - g.ReservedSectors - g.RootSectors;
        long entries = (free / g.SectorsPerCluster) + 2;
        long fatBytes = fatType == 12 ? ((entries * 3) + 1) / 2 : entries * (fatType / 8);
        int spf = (int)((fatBytes + SectorSize - 1) / SectorSize);
        int clusters = (int)((free - (2L * spf)) / g.SectorsPerCluster);
        return g with { SectorsPerFat = spf, ClusterCount = clusters };
    }

    /// <summary>A FAT entry's end-of-chain mark.</summary>
    public uint EndOfChain => FatType switch { 12 => 0xfff, 16 => 0xffff, _ => 0x0fffffff };
}
