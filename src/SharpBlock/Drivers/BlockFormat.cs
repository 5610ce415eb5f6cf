using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Drivers;

/// <summary>
/// One image format's registration: everything the format knows about itself, so that nothing above the
/// drivers (the image tool, the QMP commands, the jobs) switches on a format's name. What a format can do
/// beyond reading and writing, its nodes say through the capability interfaces in Drivers/Capabilities.
/// </summary>
public abstract class BlockFormat
{
    /// <summary>The schema's driver value; its wire name is the format's name ("qcow2", "raw").</summary>
    public abstract BlockdevDriver Driver { get; }

    public string Name => Driver.ToWire();

    /// <summary>
    /// How sure the format is that a file holding these first bytes (up to <see cref="ProbeBytes"/>) is
    /// one of its images: 0 not at all; the highest score wins, and raw, which takes anything, scores 1.
    /// </summary>
    public abstract int Probe(ReadOnlySpan<byte> head, string fileName);

    /// <summary>How many leading bytes a probe sees, as QEMU's probe buffer.</summary>
    public const int ProbeBytes = 2048;

    /// <summary>Opens one node of the format from its blockdev options; its children open through the context.</summary>
    public abstract ValueTask<BlockNode> OpenAsync(BlockOpenContext context, CancellationToken cancellationToken);

    /// <summary>The blockdev options that open this format over the given file child.</summary>
    public abstract BlockdevOptions OptionsOver(BlockdevRef file);

    /// <summary>Whether an image of this format can name a backing file (create -b, snapshot overlays).</summary>
    public virtual bool HasBackingFiles => false;

    /// <summary>
    /// Creates an empty image with the format's default settings (what jobs and snapshot-sync make, and what
    /// the image tool makes when no -o options are given); an existing file is replaced.
    /// </summary>
    public abstract ValueTask CreateAsync(string path, long size, string? backingFile, string? backingFormat, CancellationToken cancellationToken);
}
