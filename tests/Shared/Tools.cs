using System.Diagnostics;

namespace SharpBlock.Testing;

/// <summary>
/// Runs external programs (the qemu tools, nbd tools, the sharpblock executable) and returns what they
/// printed. A missing tool fails the test with the install hint; interop tests never skip quietly.
/// </summary>
public static class Tools
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public Result Ok()
        {
            if (ExitCode != 0)
                throw new InvalidOperationException($"exit {ExitCode}\nstdout: {Stdout}\nstderr: {Stderr}");
            return this;
        }

        /// <summary>
        /// A refusal as our tools give one: the exit code (1, or 2 where qemu-img uses it, as compare does) and
        /// exactly one "sharpblock: REASON" line on stderr (a multi-line reason, as qemu-img's hints, is allowed
        /// only where <paramref name="lines"/> says so), with no .NET stack frame. Returns the reason.
        /// </summary>
        public string OneLineError(int lines = 1, int exitCode = 1)
        {
            string[] got = Stderr.TrimEnd('\n').Split('\n');
            if (ExitCode != exitCode || got.Length != lines || !got[0].StartsWith("sharpblock: ", StringComparison.Ordinal)
                || got.Any(l => l.TrimStart().StartsWith("at ", StringComparison.Ordinal) || l.Contains("Exception", StringComparison.Ordinal)))
                throw new Xunit.Sdk.XunitException($"expected exit {exitCode} and {lines} line(s) 'sharpblock: ...', got exit {ExitCode}:\n{Stderr}");
            return string.Join('\n', got)["sharpblock: ".Length..];
        }
    }

    public static string Require(string tool)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin").Split(':'))
        {
            string p = Path.Combine(dir, tool);
            if (File.Exists(p))
                return p;
        }

        throw new InvalidOperationException(
            $"'{tool}' is not installed; scripts/install-deps.sh installs it (apt-get install -y qemu-utils qemu-system-common libnbd-bin socat)");
    }

    public static async Task<Result> RunAsync(string tool, IEnumerable<string> args, int timeoutMs = 120_000, string? stdin = null)
    {
        var psi = new ProcessStartInfo(tool == "sharpblock" ? "dotnet" : Require(tool))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = stdin != null,
            UseShellExecute = false,
        };
        if (tool == "sharpblock")
            psi.ArgumentList.Add(SharpBlockDll);
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        if (stdin != null)
        {
            await p.StandardInput.WriteAsync(stdin);
            p.StandardInput.Close();
        }

        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeoutMs);
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{tool} {string.Join(' ', args)} did not finish in {timeoutMs} ms");
        }

        return new Result(p.ExitCode, await stdout, await stderr);
    }

    public static Task<Result> RunAsync(string tool, params string[] args) => RunAsync(tool, (IEnumerable<string>)args);

    /// <summary>The sharpblock executable built next to the tests (run with 'dotnet').</summary>
    public static string SharpBlockDll
    {
        get
        {
            string p = Path.Combine(AppContext.BaseDirectory, "sharpblock.dll");
            if (!File.Exists(p))
                throw new FileNotFoundException("sharpblock.dll is not next to the tests; reference src/SharpBlock.Cli", p);
            return p;
        }
    }

    /// <summary>Starts 'sharpblock ARGS' in the background; the caller ends it.</summary>
    public static Process StartSharpBlock(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(SharpBlockDll);
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        return Process.Start(psi)!;
    }

    /// <summary>Asserts with qemu-img compare that a raw image holds exactly the expected bytes.</summary>
    public static async Task AssertRawImageEqualsAsync(string image, byte[] expected, string scratchDir)
    {
        string model = Path.Combine(scratchDir, "model-" + Guid.NewGuid().ToString("N") + ".raw");
        await File.WriteAllBytesAsync(model, expected);
        var r = await RunAsync("qemu-img", "compare", "-f", "raw", "-F", "raw", model, image);
        File.Delete(model);
        if (r.ExitCode != 0)
            throw new Xunit.Sdk.XunitException($"{image} differs from the expected bytes: {r.Stdout}{r.Stderr}");
    }

    /// <summary>Waits until a Unix socket file appears (a daemon is listening).</summary>
    public static async Task WaitForFileAsync(string path, int timeoutMs = 30000)
    {
        var deadline = DateTime.UtcNow.AddMilliseconds(timeoutMs);
        while (!File.Exists(path))
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException("no " + path);
            await Task.Delay(20);
        }
    }
}
