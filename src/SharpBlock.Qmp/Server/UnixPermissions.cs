using System.Runtime.InteropServices;

namespace SharpBlock.Qmp.Server;

/// <summary>umask(2): the only way to create a socket file that is never, even briefly, world-accessible.</summary>
internal static partial class UnixPermissions
{
    [LibraryImport("libc", EntryPoint = "umask")]
    private static partial int Umask(int mask);

    public static int SetUmask(int mask) => Umask(mask);
}
