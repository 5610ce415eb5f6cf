using System.Text;
using Microsoft.Win32.SafeHandles;

namespace SharpBlock.Cli.Platform;

/// <summary>
/// On a terminal, Console.Out and Console.Error as plain writers on file descriptors 1 and 2. The runtime's
/// console streams first switch a terminal to keypad-transmit mode (ESC [?1h ESC =) and never switch it back,
/// which leaves the user's shell with odd arrow keys after every command. A FileStream on a terminal (not
/// seekable) writes with write(2) and leaves its modes alone. Files and pipes keep the runtime's streams: a
/// FileStream on a regular file would write at offsets of its own and clobber what the shell appends after us.
/// </summary>
internal static class StandardStreams
{
    public static void Install()
    {
        if (!Console.IsOutputRedirected)
            Console.SetOut(TerminalWriter(1));
        if (!Console.IsErrorRedirected)
            Console.SetError(TerminalWriter(2));
    }

    private static TextWriter TerminalWriter(int fd)
    {
        // Unbuffered below the writer, flushed after every write: output and errors interleave as written.
        var stream = new FileStream(new SafeFileHandle(fd, ownsHandle: false), FileAccess.Write, bufferSize: 0);
        return TextWriter.Synchronized(new StreamWriter(stream, new UTF8Encoding(false)) { AutoFlush = true });
    }
}
