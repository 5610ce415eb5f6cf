namespace SharpBlock.Interop.Tests.Qcow2.Corruption;

/// <summary>
/// One damaged image: how it is made (qemu-img options, then a patch of one field) and what a guest then
/// does to it (qemu-io commands). The guest never writes over guest offset 1 MiB and writes only 0x33 at
/// guest offset 0, so the data written before the damage has one right content afterwards.
/// </summary>
public sealed record DamageVariant(string Name, Action<DamagedImage> Patch, string CreateOptions = "", bool Snapshot = false)
{
    public override string ToString() => Name;
}

/// <summary>
/// The catalogue, in the spirit of qemu-iotests 060 and 080: refcounts of each metadata kind set to zero,
/// table entries pointing at each metadata kind, unaligned and reserved entries, truncated tables, huge
/// counts. Offsets come from each image's own header.
/// </summary>
public static class DamageVariants
{
    private const ulong Copied = 1UL << 63;

    /// <summary>What the guest does after the damage: an in-place write, an allocating one, reads of the old data.</summary>
    public static readonly string[] GuestOps =
    [
        "write -P 0x33 0 4k",
        "write -P 0x44 32M 4k",
        "write -P 0x55 48M 128k",
        "read -P 0x22 1M 64k",
        "read -P 0x11 4k 4k",
    ];

    public static IReadOnlyList<DamageVariant> All { get; } =
    [
        // Refcounts of each metadata kind set to zero: the allocator would hand the structure out.
        new("refcount of the header is zero", i => i.SetRefcount(0, 0)),
        new("refcount of the refcount table is zero", i => i.SetRefcount(i.RefTableOffset, 0)),
        new("refcount of the refcount block is zero", i => i.SetRefcount(i.RefBlockOffset, 0)),
        new("refcount of the L1 table is zero", i => i.SetRefcount(i.L1Offset, 0)),
        new("refcount of the L2 table is zero", i => i.SetRefcount(i.L2Offset, 0)),

        // Data entries pointing at each metadata kind: an in-place write would land on it.
        new("L2 entry points at the L1 table", i => i.Poke64(i.L2Offset, Copied | (ulong)i.L1Offset)),
        new("L2 entry points at the refcount table", i => i.Poke64(i.L2Offset, Copied | (ulong)i.RefTableOffset)),
        new("L2 entry points at the refcount block", i => i.Poke64(i.L2Offset, Copied | (ulong)i.RefBlockOffset)),
        new("L2 entry points at its own L2 table", i => i.Poke64(i.L2Offset, Copied | (ulong)i.L2Offset)),

        // Table entries pointing at other metadata: writing the table back would overwrite it.
        new("L1 entry points at the refcount table", i => i.Poke64(i.L1Offset, Copied | (ulong)i.RefTableOffset)),
        new("L1 entry points at the refcount block", i => i.Poke64(i.L1Offset, Copied | (ulong)i.RefBlockOffset)),
        new("L1 entry points at the L1 table", i => i.Poke64(i.L1Offset, Copied | (ulong)i.L1Offset)),
        new("refcount table entry points at the L1 table", i => i.Poke64(i.RefTableOffset, (ulong)i.L1Offset)),
        new("refcount table entry points at the L2 table", i => i.Poke64(i.RefTableOffset, (ulong)i.L2Offset)),
        new("refcount table entry is zero", i => i.Poke64(i.RefTableOffset, 0)),

        // Entries QEMU refuses to use, or reads past.
        new("L2 entry is unaligned", i => i.Poke64(i.L2Offset, Copied | (ulong)(i.Data0 + 512))),
        new("L1 entry is unaligned", i => i.Poke64(i.L1Offset, Copied | (ulong)(i.L2Offset + 512))),
        new("refcount table entry is unaligned", i => i.Poke64(i.RefTableOffset, (ulong)(i.RefBlockOffset + 512))),
        new("L2 entry has reserved bits set", i => i.Poke64(i.L2Offset, Copied | (1UL << 56) | (ulong)i.Data0)),
        new("L1 entry has reserved bits set", i => i.Poke64(i.L1Offset, Copied | (1UL << 56) | (ulong)i.L2Offset)),
        new("L2 entry points past the end of the file", i => i.Poke64(i.L2Offset + (8 * 8), Copied | (256UL << 20))),
        new("zero flag in a version 2 image", i => i.Poke64(i.L2Offset, Copied | 1 | (ulong)i.Data0), "compat=0.10"),
        new("refcount of the L1 table is zero in a version 2 image", i => i.SetRefcount(i.L1Offset, 0), "compat=0.10"),

        // Truncated tables and huge counts: refused at open, by both.
        new("L1 table lies past the end of the file", i => i.Poke64(40, 1UL << 30)),
        new("refcount table lies past the end of the file", i => i.Poke64(48, 1UL << 30)),
        new("file cut inside the L2 table", i => i.Truncate(i.L2Offset + 4096)),
        new("l1_size is huge", i => i.Poke32(36, 0x7fffffff)),
        new("refcount_table_clusters is huge", i => i.Poke32(56, 0x7fffffff)),
        new("nb_snapshots is huge", i =>
        {
            i.Poke32(60, 0x7fffffff);
            i.Poke64(64, (ulong)DamagedImage.ClusterSize);
        }),
        new("snapshot table shorter than its count", i => i.Poke32(60, 50), Snapshot: true),
    ];
}
