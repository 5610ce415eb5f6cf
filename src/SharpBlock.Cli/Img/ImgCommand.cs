using SharpBlock.Errors;

namespace SharpBlock.Cli.Img;

/// <summary>`sharpblock img SUBCOMMAND ...`: qemu-img's syntax, output and exit codes.</summary>
internal static class ImgCommand
{
    public const string HelpText = """
        usage: sharpblock img COMMAND [options]

        Commands:
          create [-f FMT] [-o OPTIONS] [-b BACKING -F BACKING_FMT] FILE [SIZE]
          info [-f FMT] [--output=human|json] [--backing-chain] FILE
          check [-f FMT] [-r leaks|all] [--output=human|json] FILE
          map [-f FMT] [--output=human|json] [--start-offset=OFFSET] [--max-length=LEN] FILE
          convert [-p] [-c] [-n] [-W] [-m N] [-S SIZE] [-B BACKING -F BACKING_FMT] [-t CACHE] [-T CACHE] [-f FMT] [-O OUTPUT_FMT] [-o OPTIONS] SRC DST
          compare [-f FMT] [-F FMT] [-s] [-p] [-q] FILE1 FILE2
          commit [-f FMT] [-b BASE] [-d] [-p] [-q] [-r RATE] FILE
          rebase [-f FMT] [-F BACKING_FMT] [-u] [-p] [-q] -b BACKING FILE
          resize [--shrink] [--preallocation=MODE] [-f FMT] [-q] FILE [+|-]SIZE
          dd [-f FMT] [-O OUTPUT_FMT] if=INPUT of=OUTPUT [bs=N] [count=N] [skip=N]
          amend [-f FMT] [-q] -o compat=0.10|1.1,lazy_refcounts=on|off FILE
          measure [--output=human|json] -O FMT [-o OPTIONS] (--size SIZE | [-f FMT] FILE)
          snapshot [-l | -c NAME | -d NAME | -a NAME] [-f FMT] FILE
          bench [-c COUNT] [-d DEPTH] [-s SIZE] [-S STEP] [-o OFFSET] [-t CACHE] [-w] [--pattern=N] [-f FMT] FILE

        """;

    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            Console.Out.Write(HelpText);
            return args.Length == 0 ? 1 : 0;
        }

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
                "bench" => await ImgBench.RunAsync(rest).ConfigureAwait(false),
                _ => Fail($"Command not found: {args[0]}"),
            };
        }
        catch (ImgHelpRequestedException)
        {
            Console.Out.Write(HelpText);
            return 0;
        }
        catch (ImgUsageException ex)
        {
            return Fail(ex.Message);
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
internal sealed class ImgUsageException(string message) : Exception(message);

/// <summary>-h or --help among a subcommand's options: print the usage text and succeed, as qemu-img does.</summary>
internal sealed class ImgHelpRequestedException() : Exception("help requested");
