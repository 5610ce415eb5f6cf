using System.Runtime.InteropServices;

namespace SharpBlock.Net;

/// <summary>umask(2): the only way to create a socket file that is never, even briefly, world-accessible.</summary>
internal static partial class UnixPermissions
{
    // The mask is per process: two binds at once could each restore the other's mask mid-bind.
    private static readonly Lock Gate = new();

    [LibraryImport("libc", EntryPoint = "umask")]
    private static partial int Umask(int mask);

    /// <summary>Runs <paramref name="create"/> with group and others masked out, then puts the old mask back.</summary>
    public static void CreateOwnerOnly(Action create)
    {
        lock (Gate)
        {
            int old = Umask(0x3F);
            try
            {
                create();
            }
            finally
            {
                Umask(old);
            }
        }
    }
}
