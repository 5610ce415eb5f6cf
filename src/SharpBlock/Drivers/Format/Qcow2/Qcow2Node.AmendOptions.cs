using SharpBlock.Drivers.Creation;
using SharpBlock.Errors;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Qcow2;

public sealed partial class Qcow2Node : IAmendableImage
{
    /// <summary>
    /// img amend's -o values: names are refused in qemu-img's words (the backing file belongs to rebase, the
    /// layout options to creation), then the settings change and the size goes last, as qemu-img orders it;
    /// unlike resize, a smaller size needs no --shrink here.
    /// </summary>
    public async ValueTask AmendAsync(ImageOptionValues options, CancellationToken cancellationToken = default)
    {
        foreach (string name in options.Names)
        {
            if (name is "backing_file" or "backing_fmt")
                throw new BlockException(Errno.EINVAL, "Cannot amend the backing file\nYou can use 'qemu-img rebase' instead.");
            if (ImageOption.Find(ImageAmendQcow2.Options, name) == null)
            {
                throw new BlockException(Errno.EINVAL, ImageOption.Find(ImageCreateQcow2.Options, name) != null
                    ? $"Invalid parameter '{name}'\nThis option is only supported for image creation"
                    : $"Invalid parameter '{name}'");
            }
        }

        options.Check(ImageAmendQcow2.Options);
        var o = ImageAmendQcow2.Read(options);
        int? refcountBits = o.RefcountBits is { } rb ? (int)Math.Clamp(rb, 0, 1024) : null;
        await AmendAsync(o.Compat, o.LazyRefcounts, refcountBits, cancellationToken).ConfigureAwait(false);
        if (o.Size is { } size)
        {
            long newSize = ImageSizes.Required(size);
            if (newSize != Length)
                await TruncateAsync(newSize, cancellationToken).ConfigureAwait(false);
        }
    }
}
