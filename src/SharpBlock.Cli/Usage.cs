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

    public static int Fail(string message)
    {
        Console.Error.WriteLine("sharpblock: " + message);
        Console.Error.WriteLine("Try 'sharpblock --help' for more information.");
        return 1;
    }
}
