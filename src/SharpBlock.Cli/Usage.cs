namespace SharpBlock.Cli;

internal static class Usage
{
    public static string Version => typeof(Usage).Assembly.GetName().Version?.ToString(3) ?? "0.0.0";

    public const string Text = """
        usage: sharpblock COMMAND [options]

        Commands:
          daemon   run the storage daemon (QMP over a Unix socket, TCP or stdio)
          img      create, inspect, check, map and convert images (qemu-img syntax)

        Run 'sharpblock daemon --help' for the daemon's options.

        """;

    /// <summary>What -V/--version prints, in qemu's tools' form: the tool, its version, and who made it.</summary>
    public static int PrintVersion(string tool)
    {
        Console.Out.Write($"{tool} version {Version}\nCopyright (c) 2026 the SharpBlock developers\n");
        return 0;
    }

    public static int Fail(string message)
    {
        Console.Error.WriteLine("sharpblock: " + message);
        Console.Error.WriteLine("Try 'sharpblock --help' for more information.");
        return 1;
    }
}
