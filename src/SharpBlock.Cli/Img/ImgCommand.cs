using SharpBlock.Errors;

namespace SharpBlock.Cli.Img;

/// <summary>`sharpblock img SUBCOMMAND ...`: qemu-img's syntax, output and exit codes.</summary>
internal static class ImgCommand
{
    public const string HelpText = """
        usage: sharpblock img [-V | --version] COMMAND [options]

        Commands:
          amend [--object OBJ] [--image-opts] [-f FMT] [-t CACHE] [-p] [-q] [--force] -o OPTIONS FILE
          bench [-c COUNT] [-d DEPTH] [-f FMT] [--flush-interval=N] [--no-drain] [-i AIO] [--image-opts] [-n] [-o OFFSET]
                [--pattern=N] [-q] [-s SIZE] [-S STEP] [-t CACHE] [-U] [-w] [--object OBJ] FILE
          bitmap [--object OBJ] [--image-opts] [-q] (--merge SOURCE | --add | --remove | --clear | --enable | --disable)...
                 [-b SOURCE_FILE [-F SOURCE_FMT]] [-g GRANULARITY] [-f FMT] FILE BITMAP
          check [--object OBJ] [--image-opts] [-q] [-f FMT] [--output=human|json] [-r leaks|all] [-U] FILE
          commit [--object OBJ] [--image-opts] [-q] [-f FMT] [-t CACHE] [-b BASE] [-r RATE] [-d] [-p] [-U] FILE
          compare [--object OBJ] [--image-opts] [-f FMT] [-F FMT] [-T CACHE] [-p] [-q] [-s] [-U] FILE1 FILE2
          convert [--object OBJ] [--image-opts] [--target-image-opts] [--target-is-zero] [-U] [-c] [-p] [-q] [-n]
                  [-f FMT] [-t CACHE] [-T CACHE] [-O OUTPUT_FMT] [-B BACKING -F BACKING_FMT] [-o OPTIONS]
                  [-l SNAPSHOT] [-S SIZE] [-m N] [-W] SRC DST
          create [--object OBJ] [-q] [-f FMT] [-b BACKING -F BACKING_FMT] [-u] [-o OPTIONS] FILE [SIZE]
          dd [--image-opts] [-U] [-f FMT] [-O OUTPUT_FMT] [bs=N] [count=N] [skip=N] if=INPUT of=OUTPUT
          info [--object OBJ] [--image-opts] [-f FMT] [--output=human|json] [--backing-chain] [-U] FILE
          map [--object OBJ] [--image-opts] [-f FMT] [--start-offset=OFFSET] [--max-length=LEN] [--output=human|json] [-U] FILE
          measure [--output=human|json] [--object OBJ] [--image-opts] [-f FMT] [-l SNAPSHOT] [-U] -O FMT [-o OPTIONS]
                  (--size SIZE | FILE)
          rebase [--object OBJ] [--image-opts] [-U] [-q] [-f FMT] [-t CACHE] [-T CACHE] [-p] [-u] -b BACKING [-F BACKING_FMT] FILE
          resize [--object OBJ] [--image-opts] [-f FMT] [--preallocation=MODE] [-q] [--shrink] FILE [+|-]SIZE
          snapshot [--object OBJ] [--image-opts] [-U] [-q] [-l | -a NAME | -c NAME | -d NAME] [-f FMT] FILE

        Options shared by the commands:
          --object secret,id=ID,data=TEXT|file=PATH   a secret, e.g. the key of an encrypted qcow2 (encrypt.key-secret=ID)
          --image-opts   FILE is a key=value list of block options (driver=qcow2,file.filename=...), not a file name
          -U, --force-share   open the image read-only while another process may be writing it
          -f FMT         the image's format; probed from its first bytes when left out (raw is only guessed)
          -t / -T CACHE  cache mode of the target / source: none, writeback, writethrough, directsync, unsafe
          -p             show progress;  -q  quiet
          -o OPTIONS     format options; '-o help' lists them for the format given with -f or -O
          SIZE           bytes, or with a k, M, G, T, P or E suffix

        """;

    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            Console.Out.Write(HelpText);
            return args.Length == 0 ? 1 : 0;
        }

        // qemu-img takes -V/--version before the subcommand only.
        if (args[0] is "-V" or "--version")
            return Usage.PrintVersion("sharpblock img");

        string[] rest = args[1..];
        try
        {
            return args[0] switch
            {
                "create" => await ImgCreate.RunAsync(rest).ConfigureAwait(false),
                "info" => await ImgInfo.RunAsync(rest).ConfigureAwait(false),
                "check" => await ImgCheck.RunAsync(rest).ConfigureAwait(false),
                "map" => await ImgMap.RunAsync(rest).ConfigureAwait(false),
                "convert" => await ImgConvert.RunAsync(rest).ConfigureAwait(false),
                "compare" => await ImgCompare.RunAsync(rest).ConfigureAwait(false),
                "commit" => await ImgCommit.RunAsync(rest).ConfigureAwait(false),
                "rebase" => await ImgRebase.RunAsync(rest).ConfigureAwait(false),
                "resize" => await ImgResize.RunAsync(rest).ConfigureAwait(false),
                "dd" => await ImgDd.RunAsync(rest).ConfigureAwait(false),
                "measure" => await ImgMeasure.RunAsync(rest).ConfigureAwait(false),
                "amend" => await ImgAmend.RunAsync(rest).ConfigureAwait(false),
                "snapshot" => await ImgSnapshot.RunAsync(rest).ConfigureAwait(false),
                "bitmap" => await ImgBitmap.RunAsync(rest).ConfigureAwait(false),
                "bench" => await ImgBench.RunAsync(rest).ConfigureAwait(false),
                _ => throw ImgUsageException.Syntax($"Command not found: {args[0]}"),
            };
        }
        catch (ImgHelpRequestedException)
        {
            Console.Out.Write(HelpText);
            return 0;
        }
        catch (ImgUsageException ex)
        {
            // qemu-img words some errors as several reports, each line with its prefix.
            foreach (string line in ex.EveryLinePrefixed ? ex.Message.Split('\n') : [ex.Message])
                Fail(line);
            if (ex.ShowHelpHint)
                Console.Error.WriteLine("Try 'sharpblock img --help' for more information");
            return 1;
        }
        catch (BlockException ex)
        {
            Fail(ex.Message);
            // A lock held by another process is the one failure a user fixes outside this tool; say so as qemu-img does.
            if (ImageLockException.Find(ex) is { } locked)
                Console.Error.WriteLine($"Is another process using the image [{locked.Path}]?");

            return 1;
        }
        catch (SharpBlock.Qmp.Protocol.QmpException ex)
        {
            // Options in key=value form (--image-opts) that the schema refused.
            return Fail(ex.Message);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Whatever the library did not word itself (a path it cannot create, a full disk) still ends as
            // one line and exit code 1, never a stack trace.
            return Fail(ex.Message);
        }
    }

    public static int Fail(string message)
    {
        Console.Error.WriteLine("sharpblock: " + message);
        return 1;
    }
}

/// <summary>A command line qemu-img would refuse; printed as an error with exit code 1.</summary>
internal sealed class ImgUsageException(string message) : Exception(message)
{
    /// <summary>Whether qemu-img follows this error with its "Try ... --help" line (a malformed command line).</summary>
    public bool ShowHelpHint { get; private init; }

    /// <summary>Whether each line of the message is its own error line (with the prefix), as qemu-img prints some.</summary>
    public bool EveryLinePrefixed { get; init; }

    public static ImgUsageException Syntax(string message) => new(message) { ShowHelpHint = true };
}

/// <summary>-h or --help among a subcommand's options: print the usage text and succeed, as qemu-img does.</summary>
internal sealed class ImgHelpRequestedException() : Exception("help requested");
