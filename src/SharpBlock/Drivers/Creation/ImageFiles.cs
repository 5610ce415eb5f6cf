using SharpBlock.Errors;

namespace SharpBlock.Drivers.Creation;

/// <summary>The file a creator writes a new image into, so every format words a failure to make it as qemu-img does.</summary>
public static class ImageFiles
{
    /// <summary>
    /// Creates (or truncates) the file for read and write; a failure is "Could not create 'PATH': REASON" with the
    /// errno's own text, never the runtime's wording.
    /// </summary>
    public static FileStream Create(string path)
    {
        try
        {
            return new FileStream(path, FileMode.Create, FileAccess.ReadWrite, FileShare.Read);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw BlockException.ForPath("create", path, ex);
        }
    }
}
