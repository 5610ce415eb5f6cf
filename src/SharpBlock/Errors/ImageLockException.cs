namespace SharpBlock.Errors;

/// <summary>
/// Another process holds a lock on an image file that this open needs (EAGAIN). The one failure a user fixes
/// outside the tool, so the tool names the file: qemu-img's "Is another process using the image [PATH]?".
/// </summary>
public sealed class ImageLockException : BlockException
{
    public ImageLockException(string path, string message)
        : base(Errno.EAGAIN, message)
    {
        Path = path;
    }

    /// <summary>The file whose lock could not be taken.</summary>
    public string Path { get; }

    /// <summary>The lock failure among <paramref name="ex"/> and the exceptions it wraps, or null.</summary>
    public static ImageLockException? Find(Exception? ex)
    {
        for (; ex != null; ex = ex.InnerException)
        {
            if (ex is ImageLockException l)
                return l;
        }

        return null;
    }
}
