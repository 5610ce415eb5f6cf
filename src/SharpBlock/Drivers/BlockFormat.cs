using SharpBlock.Drivers.Creation;
using SharpBlock.Errors;
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

    /// <summary>
    /// Points blockdev options of this format at a given backing node instead of the one the image names
    /// (an empty reference opens it without one); false when the format has no backing files.
    /// </summary>
    public virtual bool SetBacking(BlockdevOptions options, BlockdevRef backing) => false;

    /// <summary>Whether an image of this format can name a backing file (create -b, snapshot overlays).</summary>
    public virtual bool HasBackingFiles => false;

    /// <summary>
    /// Whether images of the format take compressed writes (their nodes are <see cref="ICompressedWrites"/>);
    /// asked before a target is created, so convert -c refuses without leaving a file behind.
    /// </summary>
    public virtual bool CompressedWrites => false;

    /// <summary>
    /// Creates an empty image with the format's default settings (what jobs and snapshot-sync make, and what
    /// the image tool makes when no -o options are given); an existing file is replaced.
    /// </summary>
    public abstract ValueTask CreateAsync(string path, long size, string? backingFile, string? backingFormat, CancellationToken cancellationToken);

    /// <summary>The -o options of create and convert -O, for checking and for "-o help".</summary>
    public virtual IReadOnlyList<ImageOption> CreateOptions => HasBackingFiles ? ImageCreateLayered.Options : ImageCreateBasic.Options;

    /// <summary>
    /// Reads and checks the -o values of a new image (the caller has put the size in as "size", and -b/-F as
    /// backing_file/backing_fmt) and returns it ready to be written. Types and names were already checked
    /// against <see cref="CreateOptions"/>; what is refused here is refused before anything is written.
    /// </summary>
    public virtual ImageCreation PlanCreate(ImageOptionValues options)
    {
        var o = ImageCreateLayered.Read(options);
        if (o.BackingFile != null && !HasBackingFiles)
            throw new BlockException(Errno.EINVAL, $"Backing file not supported for file format '{Name}'");
        return new DefaultImageCreation(this)
        {
            Size = ImageSizes.Required(o.Size),
            BackingFile = o.BackingFile,
            BackingFormat = o.BackingFmt,
        };
    }

    /// <summary>The options img amend can change, or null when the format cannot amend (its nodes then lack <see cref="IAmendableImage"/>).</summary>
    public virtual IReadOnlyList<ImageOption>? AmendOptions => null;

    /// <summary>
    /// img measure: the size of an image of this format holding <paramref name="source"/> (or, with no source,
    /// an empty one of <paramref name="virtualSize"/>), made with the given -o values.
    /// </summary>
    public virtual ValueTask<ImageMeasurement> MeasureAsync(ImageOptionValues options, long virtualSize, BlockNode? source, CancellationToken cancellationToken) =>
        throw new BlockException(Errno.EOPNOTSUPP, $"Block driver '{Name}' does not support size measurement");

    /// <summary>A format without creation options of its own: its default image of the given size and backing file.</summary>
    private sealed class DefaultImageCreation(BlockFormat format) : ImageCreation
    {
        public override string Describe(string fileName)
        {
            string line = $"Formatting '{fileName}', fmt={format.Name} size={Size}";
            if (BackingFile != null)
                line += " backing_file=" + BackingFile;
            if (BackingFormat != null)
                line += " backing_fmt=" + BackingFormat;
            return line;
        }

        public override ValueTask CreateAsync(string path, CancellationToken cancellationToken) =>
            format.CreateAsync(path, Size, BackingFile, BackingFormat, cancellationToken);
    }
}
