using SharpBlock.Cli;
using SharpBlock.Cli.Daemon;
using SharpBlock.Cli.Img;
using SharpBlock.Cli.Platform;

StandardStreams.Install();

// sharpblock daemon ... | sharpblock --version
if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
{
    Console.Out.Write(Usage.Text);
    return args.Length == 0 ? 1 : 0;
}

if (args[0] is "-V" or "--version")
    return Usage.PrintVersion("sharpblock");

string[] rest = args[1..];
return args[0] switch
{
    "daemon" => await DaemonCommand.RunAsync(rest).ConfigureAwait(false),
    "img" => await ImgCommand.RunAsync(rest).ConfigureAwait(false),
    _ => Usage.Fail($"unknown command '{args[0]}'"),
};
