using SharpBlock.Fuzz.Targets;

namespace SharpBlock.Fuzz;

/// <summary>The table of targets, by the name scripts/fuzz.sh and the tests use.</summary>
public static class FuzzTargets
{
    public static IReadOnlyList<FuzzTarget> All { get; } =
    [
        new("qcow2", "a whole qcow2 image opened, read, written and checked over a memory node", Qcow2ImageTarget.RunAsync),
        new("nbd", "a client's bytes to a real NBD server session: handshake options, then requests", NbdServerTarget.RunAsync),
        new("vhdx", "a whole vhdx image (sparse form) opened, its log replayed, read, written and checked over a memory node", VhdxImageTarget.RunAsync),
        new("vdi", "a whole VDI image opened, read, written and checked over a memory node", VdiImageTarget.RunAsync),
        new("qed", "a whole QED image opened, read, written and checked over a memory node", QedImageTarget.RunAsync),
        new("qcow", "a whole qcow (version 1) image opened, read, written and reopened over a memory node", QcowImageTarget.RunAsync),
        new("cow", "a whole cow (UML COW v2) image opened, read, written and reopened over a memory node", CowImageTarget.RunAsync),
        new("vpc", "a whole VHD image (fixed or dynamic) opened, read and written over a memory node", VpcImageTarget.RunAsync),
        new("vmdk", "a whole single-file vmdk image (sparse or stream) opened, read, written and checked over a memory node", VmdkImageTarget.RunAsync),
        new("parallels", "a whole Parallels image opened, read, written and checked over a memory node", ParallelsImageTarget.RunAsync),
        new("bochs", "a whole Bochs growing redolog opened and read over a memory node", BochsImageTarget.RunAsync),
        new("cloop", "a whole cloop image opened and every block in reach decompressed over a memory node", CloopImageTarget.RunAsync),
        new("dmg", "a whole dmg image (plist or resource fork) opened and every chunk in reach unpacked over a memory node", DmgImageTarget.RunAsync),
        new("qmp", "a QMP byte stream: frame scanner, JSON reader, envelope and the schema's argument readers", QmpTarget.RunAsync),
    ];

    public static FuzzTarget? Find(string name)
    {
        foreach (var t in All)
        {
            if (t.Name == name)
                return t;
        }

        return null;
    }
}
