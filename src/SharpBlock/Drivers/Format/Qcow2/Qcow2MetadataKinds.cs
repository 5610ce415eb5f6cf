using SharpBlock.Errors;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>
/// The kinds of qcow2 metadata a write is checked against before it reaches the file (the overlap-check
/// option). Bit order and names are QEMU's: the names appear in the corruption message on the wire.
/// </summary>
[Flags]
public enum Qcow2MetadataKinds
{
    None = 0,
    MainHeader = 1 << 0,
    ActiveL1 = 1 << 1,
    ActiveL2 = 1 << 2,
    RefcountTable = 1 << 3,
    RefcountBlock = 1 << 4,
    SnapshotTable = 1 << 5,
    InactiveL1 = 1 << 6,
    InactiveL2 = 1 << 7,
    BitmapDirectory = 1 << 8,

    /// <summary>What costs nothing to check: fixed locations held in the header.</summary>
    Constant = MainHeader | ActiveL1 | RefcountTable | SnapshotTable | BitmapDirectory,

    /// <summary>Also every table reachable from the in-memory L1 and refcount tables (QEMU's default).</summary>
    Cached = Constant | ActiveL2 | RefcountBlock,

    /// <summary>Also the snapshots' tables, which must be read from the file once.</summary>
    All = Cached | InactiveL1 | InactiveL2,
}

public static class Qcow2MetadataKindNames
{
    /// <summary>The name of one kind as QEMU words it in "overlaps with ...".</summary>
    public static string Describe(Qcow2MetadataKinds kind) => kind switch
    {
        Qcow2MetadataKinds.MainHeader => "qcow2_header",
        Qcow2MetadataKinds.ActiveL1 => "active L1 table",
        Qcow2MetadataKinds.ActiveL2 => "active L2 table",
        Qcow2MetadataKinds.RefcountTable => "refcount table",
        Qcow2MetadataKinds.RefcountBlock => "refcount block",
        Qcow2MetadataKinds.SnapshotTable => "snapshot table",
        Qcow2MetadataKinds.InactiveL1 => "inactive L1 table",
        Qcow2MetadataKinds.InactiveL2 => "inactive L2 table",
        Qcow2MetadataKinds.BitmapDirectory => "bitmap directory",
        _ => "metadata",
    };

    /// <summary>The kinds the overlap-check option asks for: a template, then per-kind switches over it.</summary>
    public static Qcow2MetadataKinds FromOptions(Qcow2OverlapChecks? option)
    {
        if (option == null)
            return Qcow2MetadataKinds.Cached;
        if (option.Mode is { } mode)
            return FromMode(mode);
        var f = option.Flags ?? throw new BlockException(Errno.EINVAL, "Invalid parameter 'overlap-check'");
        var kinds = f.Template is { } t ? FromMode(t) : Qcow2MetadataKinds.Cached;
        kinds = Switch(kinds, Qcow2MetadataKinds.MainHeader, f.MainHeader);
        kinds = Switch(kinds, Qcow2MetadataKinds.ActiveL1, f.ActiveL1);
        kinds = Switch(kinds, Qcow2MetadataKinds.ActiveL2, f.ActiveL2);
        kinds = Switch(kinds, Qcow2MetadataKinds.RefcountTable, f.RefcountTable);
        kinds = Switch(kinds, Qcow2MetadataKinds.RefcountBlock, f.RefcountBlock);
        kinds = Switch(kinds, Qcow2MetadataKinds.SnapshotTable, f.SnapshotTable);
        kinds = Switch(kinds, Qcow2MetadataKinds.InactiveL1, f.InactiveL1);
        kinds = Switch(kinds, Qcow2MetadataKinds.InactiveL2, f.InactiveL2);
        kinds = Switch(kinds, Qcow2MetadataKinds.BitmapDirectory, f.BitmapDirectory);
        return kinds;
    }

    private static Qcow2MetadataKinds FromMode(Qcow2OverlapCheckMode mode) => mode switch
    {
        Qcow2OverlapCheckMode.None => Qcow2MetadataKinds.None,
        Qcow2OverlapCheckMode.Constant => Qcow2MetadataKinds.Constant,
        Qcow2OverlapCheckMode.All => Qcow2MetadataKinds.All,
        _ => Qcow2MetadataKinds.Cached,
    };

    private static Qcow2MetadataKinds Switch(Qcow2MetadataKinds kinds, Qcow2MetadataKinds kind, bool? on) =>
        on switch
        {
            true => kinds | kind,
            false => kinds & ~kind,
            null => kinds,
        };
}
