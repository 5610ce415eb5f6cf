namespace SharpBlock.Io;

/// <summary>Modifiers of a write-like request, the same set every layer understands.</summary>
[Flags]
public enum RequestFlags
{
    None = 0,

    /// <summary>Forced unit access: the data is on stable storage when the request completes.</summary>
    Fua = 1,

    /// <summary>A zero write may deallocate the range instead of writing zeros.</summary>
    MayUnmap = 2,

    /// <summary>A zero write must be fast (no fallback to writing a buffer of zeros) or fail with ENOTSUP.</summary>
    NoFallback = 4,
}
