using System.Runtime.InteropServices;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using SharpBlock.Errors;
using SharpBlock.Options;
using SharpBlock.Qmp.Protocol;
using SharpBlock.Qmp.Schema;
using SharpBlock.Qmp.Server;
using SharpBlock.Schema;

namespace SharpBlock.Cli.Daemon;

/// <summary>`sharpblock daemon`: a block graph, its QMP monitors, and a clean flush on quit or signal.</summary>
internal static class DaemonCommand
{
    public static async Task<int> RunAsync(string[] args)
    {
        DaemonOptions options;
        try
        {
            options = DaemonOptions.Parse(args);
        }
        catch (ArgumentException ex)
        {
            Console.Error.WriteLine("sharpblock: " + ex.Message);
            Console.Error.WriteLine("Try 'sharpblock daemon --help' for more information.");
            return 1;
        }

        if (options.Help)
        {
            Console.Out.Write(DaemonOptions.HelpText);
            return 0;
        }

        if (options.Version)
            return Usage.PrintVersion("sharpblock daemon");

        // No dependency injection or configuration behind the factory: one provider, one minimum level.
        using var loggers = new LoggerFactory([new StderrLoggerProvider(options.Verbose ? LogLevel.Debug : LogLevel.Information)],
            new LoggerFilterOptions { MinLevel = options.Verbose ? LogLevel.Debug : LogLevel.Information });
        var log = loggers.CreateLogger("sharpblock");

        var graph = BlockGraphs.Create();
        var qmp = new QmpServer(graph, loggers) { ReportedVersion = options.QmpVersion };
        var socketFiles = new List<string>();
        var stop = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.TrySetResult("SIGTERM"); });
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.TrySetResult("SIGINT"); });
        int exitCode = 0;
        try
        {
            foreach (var (id, secret) in options.Secrets.All)
                graph.Secrets.Add(id, secret);
            foreach (var spec in options.Blockdevs)
                await graph.AddAsync(ParseBlockdev(spec)).ConfigureAwait(false);

            if (options.NbdServer is { } nbdAddr)
            {
                await qmp.Nbd.StartAsync(nbdAddr).ConfigureAwait(false);
                foreach (var e in options.Exports)
                    await qmp.Nbd.AddBlockExportAsync(e).ConfigureAwait(false);
                log.LogInformation("NBD server started with {Count} export(s)", options.Exports.Count);
            }

            if (options.Monitors.Count == 0)
            {
                string path = DefaultSocketPath();
                Directory.CreateDirectory(Path.GetDirectoryName(path)!, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
                options.Monitors.Add(new MonitorEndpoint.Unix(path));
                Console.Out.WriteLine($"sharpblock: QMP listening on {path}");
                Console.Out.WriteLine($"sharpblock: connect with: socat - UNIX-CONNECT:{path}");
            }

            foreach (var m in options.Monitors)
            {
                switch (m)
                {
                    case MonitorEndpoint.Unix u:
                        qmp.ListenUnix(u.Path);
                        socketFiles.Add(u.Path);
                        log.LogInformation("QMP listening on unix:{Path}", u.Path);
                        break;
                    case MonitorEndpoint.Tcp t:
                        var bound = qmp.ListenTcp(t.EndPoint);
                        log.LogInformation("QMP listening on tcp:{EndPoint}", bound);
                        break;
                    case MonitorEndpoint.Stdio:
                        _ = qmp.ServeAsync(Console.OpenStandardInput(), Console.OpenStandardOutput(), "stdio");
                        break;
                }
            }

            if (options.PidFile is { } pidFile)
            {
                // Written aside and renamed, so a reader never sees an empty or partial pid file.
                string tmp = pidFile + ".tmp";
                await File.WriteAllTextAsync(tmp, Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture) + "\n").ConfigureAwait(false);
                // 0644 whatever the umask: service managers and scripts of other users read it; nobody else writes it.
                File.SetUnixFileMode(tmp, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
                File.Move(tmp, pidFile, overwrite: true);
            }

            string why = await Task.WhenAny(stop.Task, qmp.QuitRequested.ContinueWith(static _ => "quit", TaskScheduler.Default))
                .Unwrap().ConfigureAwait(false);
            log.LogInformation("Shutting down ({Reason})", why);
        }
        catch (Exception ex) when (ex is BlockException or QmpException or IOException or ArgumentException or JsonException)
        {
            Console.Error.WriteLine("sharpblock: " + ex.Message);
            exitCode = 1;
        }
        finally
        {
            await qmp.DisposeAsync().ConfigureAwait(false);
            try
            {
                await graph.FlushAllAsync().ConfigureAwait(false);
            }
            catch (BlockException ex)
            {
                log.LogError("Flush at exit failed: {Message}", ex.Message);
                exitCode = 1;
            }

            await graph.DisposeAsync().ConfigureAwait(false);
            foreach (var f in socketFiles)
                File.Delete(f);
            if (options.PidFile is { } pf)
                File.Delete(pf);
        }

        return exitCode;
    }

    /// <summary>--blockdev takes JSON (starting with '{') or QEMU's key=value form.</summary>
    internal static BlockdevOptions ParseBlockdev(string spec)
    {
        bool json = spec.TrimStart().StartsWith('{');
        if (json && QmpInputRules.FindProblem(new System.Buffers.ReadOnlySequence<byte>(System.Text.Encoding.UTF8.GetBytes(spec))) is { } problem)
            throw new ArgumentException(problem);
        using var doc = json ? JsonDocument.Parse(spec) : Keyval.ParseTree(spec);
        return QapiCodec.ReadBlockdevOptions(doc.RootElement, "", keyval: !json);
    }

    internal static string DefaultSocketPath()
    {
        string? runtime = Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR");
        string dir = !string.IsNullOrEmpty(runtime) && Directory.Exists(runtime)
            ? Path.Combine(runtime, "sharpblock")
            : Path.Combine(Path.GetTempPath(), "sharpblock-" + Platform.Posix.GetUid().ToString(System.Globalization.CultureInfo.InvariantCulture));
        return Path.Combine(dir, "qmp.sock");
    }
}
