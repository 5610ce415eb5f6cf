using SharpBlock.Drivers;
using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Cli.Img;

/// <summary>
/// The write lock on an existing file that create, convert or dd is about to replace, held while the creator
/// runs. A creator truncates the file before any node has it open, so without this an image that qemu, qemu-io
/// or a daemon is writing would be wiped under it; qemu-img takes the same lock when it creates.
/// </summary>
internal static class ImgTargetLock
{
    /// <summary>Runs <paramref name="create"/> holding the write lock on <paramref name="path"/> if it exists.</summary>
    public static async Task CreateAsync(string path, Func<Task> create)
    {
        var held = await AcquireAsync(path).ConfigureAwait(false);
        try
        {
            await create().ConfigureAwait(false);
        }
        finally
        {
            // Released before the caller opens the new image: our own locks would conflict with it.
            if (held != null)
                await held.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static async Task<BlockGraph?> AcquireAsync(string path)
    {
        if (!File.Exists(path))
            return null;
        var graph = BlockGraphs.Create();
        try
        {
            // Opened as raw: only the file's lock bytes matter, whatever format it holds now.
            await graph.AddAsync(ImageFormats.ImageOptions(path, "raw", readOnly: false, "target-lock")).ConfigureAwait(false);
            return graph;
        }
        catch (BlockException ex)
        {
            await graph.DisposeAsync().ConfigureAwait(false);
            if (ex.Errno == Errno.EAGAIN)
                throw ImageOpenException.Wrap(path, ex);

            // Anything else (no permission, not a file) the creator reports in its own words.
            return null;
        }
    }

    /// <summary>The refusal to create a target over a file the source reads, worded as the lock conflict qemu-img meets there.</summary>
    public static ImageOpenException Refused(string path) =>
        new(Errno.EAGAIN, path, "Failed to get \"write\" lock", new ImageLockException(path, "Failed to get \"write\" lock"));
}
