namespace SharpBlock.Drivers.Format.Vpc;

/// <summary>
/// CHS geometry of a VHD, and how QEMU 7.2 derives the virtual size from a footer. Virtual PC sizes a disk
/// by its geometry, Hyper-V and the converters by current_size; QEMU tells them apart by creator_app.
/// </summary>
public static class VpcGeometry
{
    /// <summary>The VHD specification's CHS for a sector count (capped at the largest geometry).</summary>
    public static (ushort Cylinders, byte Heads, byte Sectors) For(long totalSectors)
    {
        totalSectors = Math.Min(totalSectors, VpcLayout.MaxGeometrySectors);
        int sectors, heads;
        long cylTimesHeads;
        if (totalSectors >= 65535L * 16 * 63)
        {
            sectors = 255;
            heads = 16;
            cylTimesHeads = totalSectors / sectors;
        }
        else
        {
            sectors = 17;
            cylTimesHeads = totalSectors / sectors;
            heads = (int)Math.Max(4, (cylTimesHeads + 1023) / 1024);
            if (cylTimesHeads >= heads * 1024L || heads > 16)
            {
                sectors = 31;
                heads = 16;
                cylTimesHeads = totalSectors / sectors;
            }

            if (cylTimesHeads >= heads * 1024L)
            {
                sectors = 63;
                heads = 16;
                cylTimesHeads = totalSectors / sectors;
            }
        }

        return ((ushort)(cylTimesHeads / heads), (byte)heads, (byte)sectors);
    }

    /// <summary>
    /// The sectors a new image gets: at least those asked for, rounded up to a whole geometry (so a convert never
    /// truncates), unless even the largest geometry is too small, when the size is kept as given.
    /// </summary>
    public static (long Sectors, ushort Cylinders, byte Heads, byte SectorsPerTrack) ForNewImage(long requestedSectors)
    {
        long want = Math.Min(VpcLayout.MaxGeometrySectors, requestedSectors);
        (ushort c, byte h, byte s) = (0, 0, 0);
        for (long i = 0; want > (long)c * h * s; i++)
            (c, h, s) = For(want + i);
        long chs = (long)c * h * s;
        return (chs == VpcLayout.MaxGeometrySectors ? requestedSectors : chs, c, h, s);
    }

    private static readonly uint[] CurrentSizeCreators =
    [
        VpcFooter.Tag("win "u8), VpcFooter.Tag("qem2"u8), VpcFooter.Tag("d2v "u8), VpcFooter.Tag("CTXS"u8), VpcFooter.Tag("tap\0"u8),
    ];

    /// <summary>
    /// QEMU 7.2's rule: Hyper-V ("win "), QEMU's force_size images ("qem2"), Disk2VHD ("d2v "), XenConverter
    /// ("CTXS") and XenServer ("tap\0") give current_size; anything else the geometry, unless the geometry is
    /// the largest one, which cannot describe bigger disks.
    /// </summary>
    public static long VirtualSectors(in VpcFooter footer)
    {
        long chs = footer.GeometrySectors;
        bool useChs = Array.IndexOf(CurrentSizeCreators, footer.CreatorApp) < 0;
        return !useChs || chs == VpcLayout.MaxGeometrySectors ? (long)(footer.CurrentSize / VpcLayout.SectorSize) : chs;
    }
}
