using System.Runtime.InteropServices;

namespace SharpBlock.Cli.Tests.Daemon;

internal static partial class Posix
{
    [LibraryImport("libc", EntryPoint = "kill")]
    public static partial int Kill(int pid, int signal);
}
