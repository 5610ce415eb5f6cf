namespace SharpBlock.Drivers.Creation;

/// <summary>
/// An image about to be made, read and checked from its -o values (<see cref="BlockFormat.PlanCreate"/>) but
/// not written yet: the image tool prints <see cref="Describe"/> first, as qemu-img prints its
/// "Formatting ..." line, then creates.
/// </summary>
public abstract class ImageCreation
{
    /// <summary>The virtual size in bytes.</summary>
    public required long Size { get; init; }

    public string? BackingFile { get; init; }

    public string? BackingFormat { get; init; }

    /// <summary>Whether the new image's data will be encrypted (it then needs a key before anything is written to it).</summary>
    public virtual bool Encrypted => false;

    /// <summary>qemu-img's line for the new image: "Formatting 'FILE', fmt=FORMAT" and the settings it will have.</summary>
    public abstract string Describe(string fileName);

    /// <summary>
    /// Refuses settings the format cannot write, in its own words. qemu-img prints its "Formatting" line before
    /// the driver checks, so the tool calls this after <see cref="Describe"/> and before touching the file.
    /// </summary>
    public virtual void Validate()
    {
    }

    /// <summary>Writes the empty image; an existing file is replaced.</summary>
    public abstract ValueTask CreateAsync(string path, CancellationToken cancellationToken);
}
