using System.Text;
using Microsoft.Win32.SafeHandles;

namespace SharpBlock.Cli.Platform;

/// <summary>
/// Console.Out and Console.Error as plain writers on file descriptors 1 and 2. The runtime's console streams,
/// on a terminal, first switch it to keypad-transmit mode (ESC [?1h ESC =) and never switch it back, which
/// leaves the user's shell with odd arrow keys after every command; a FileStream on the descriptor writes the
/// same bytes without touching the terminal's modes.
/// </summary>
internal static class StandardStreams
{
    public static void Install()
    {
        Console.SetOut(Writer(1));
        Console.SetError(Writer(2));
    }

    private static TextWriter Writer(int fd)
    {
        // Unbuffered below the writer, flushed after every write: output and errors interleave as written.
        var stream = new FileStream(new SafeFileHandle(fd, ownsHandle: false), FileAccess.Write, bufferSize: 0);
        return TextWriter.Synchronized(new StreamWriter(stream, new UTF8Encoding(false)) { AutoFlush = true });
    }
}
