namespace SharpBlock.Errors;

/// <summary>
/// An image whose metadata cannot be trusted: names the file, the field and where it sits, so an operator
/// can look at the bytes. Raised before any of the bad values is used.
/// </summary>
public sealed class ImageCorruptException : BlockException
{
    public ImageCorruptException(string file, string field, long offset, string problem)
        : base(Errno.EINVAL, $"Image '{file}' is corrupt: {field} at offset {offset}: {problem}")
    {
        File = file;
        Field = field;
        Offset = offset;
    }

    public string File { get; }
    public string Field { get; }
    public long Offset { get; }
}
