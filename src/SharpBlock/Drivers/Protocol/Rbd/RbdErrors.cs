using SharpBlock.Errors;

namespace SharpBlock.Drivers.Protocol.Rbd;

/// <summary>librados/librbd's negative errno results as the library's exceptions.</summary>
internal static class RbdErrors
{
    public static BlockException Of(int result, string what)
    {
        var errno = (Errno)(-result);
        return new BlockException(errno, $"{what}: {BlockException.Describe(errno)}");
    }

    public static void Check(int result, string what)
    {
        if (result < 0)
            throw Of(result, what);
    }
}
