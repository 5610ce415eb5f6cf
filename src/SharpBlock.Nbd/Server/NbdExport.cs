using SharpBlock.Bitmaps;
using SharpBlock.Graph;

namespace SharpBlock.Nbd.Server;

/// <summary>
/// A device offered under a name. All I/O goes through the device (BlockBackend), so its statistics and
/// error state see NBD traffic like any other user's.
/// </summary>
public sealed class NbdExport
{
    public NbdExport(string name, BlockBackend device, bool writable, string? description = null)
    {
        if (name.Length > Protocol.NbdConstants.MaxStringLength)
            throw new ArgumentException("Export name is too long", nameof(name));
        Name = name;
        Device = device;
        Writable = writable;
        Description = description;
    }

    public string Name { get; }

    public BlockBackend Device { get; }

    public bool Writable { get; }

    public string? Description { get; }

    /// <summary>The block export id (query-block-exports); the export name unless given.</summary>
    public string Id
    {
        get => _id ?? Name;
        init => _id = value;
    }

    private readonly string? _id;

    /// <summary>Every write is made durable before it is acknowledged (block-export-add's writethrough).</summary>
    public bool Writethrough { get; init; }

    /// <summary>Dirty bitmaps offered as qemu:dirty-bitmap:NAME contexts, in the order they were named.</summary>
    public IReadOnlyList<NamedDirtyBitmap> Bitmaps { get; init; } = [];

    /// <summary>Whether the qemu:allocation-depth context is offered.</summary>
    public bool AllocationDepth { get; init; }
}
