using SharpBlock.Errors;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Creation;

/// <summary>Small rules every format's creation shares.</summary>
public static class ImageSizes
{
    /// <summary>The size option, which the image tool always fills in (from the command line or the backing file).</summary>
    public static long Required(ulong? size) => size switch
    {
        null => throw new BlockException(Errno.EINVAL, "Image creation needs a size parameter"),
        > long.MaxValue => throw new BlockException(Errno.EINVAL, "Image size must be less than 8 EiB!"),
        _ => (long)size.Value,
    };

    /// <summary>The schema's preallocation mode as the drivers' creators take it.</summary>
    public static Preallocation ToPreallocation(this PreallocMode? mode) => mode switch
    {
        PreallocMode.Metadata => Preallocation.Metadata,
        PreallocMode.Falloc => Preallocation.Falloc,
        PreallocMode.Full => Preallocation.Full,
        _ => Preallocation.Off,
    };
}
