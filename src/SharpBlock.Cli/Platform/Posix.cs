using System.Runtime.InteropServices;

namespace SharpBlock.Cli.Platform;

internal static partial class Posix
{
    [LibraryImport("libc", EntryPoint = "getuid")]
    public static partial uint GetUid();
}
