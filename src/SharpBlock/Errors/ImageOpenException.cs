namespace SharpBlock.Errors;

/// <summary>
/// An image (or one of its files) could not be opened: "Could not open 'PATH': REASON", as qemu-img words it.
/// Callers that add the path to a failure test for this type, never for the text, so no message gets the
/// prefix twice.
/// </summary>
public class ImageOpenException : BlockException
{
    public ImageOpenException(Errno errno, string path, string reason, Exception? inner = null)
        : base(errno, $"Could not open '{path}': {reason}", inner)
    {
        Path = path;
    }

    /// <summary>The name the failure is reported under: the image as the user named it, or the file that failed.</summary>
    public string Path { get; }

    /// <summary>A failure while opening <paramref name="path"/>, prefixed unless it already names an image.</summary>
    public static ImageOpenException Wrap(string path, BlockException ex) =>
        ex as ImageOpenException ?? new ImageOpenException(ex.Errno, path, ex.Message, ex);
}
