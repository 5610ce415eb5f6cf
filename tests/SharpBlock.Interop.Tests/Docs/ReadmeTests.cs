using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Docs;

/// <summary>
/// Runs the README's console blocks, in order, as a newcomer would type them, so the README cannot drift from
/// the tools. In a block, "$ " lines are shell commands (a trailing '\' continues them), lines starting with
/// {"execute" are typed into the open QMP session, and every other line is expected output of what came
/// before it: "..." alone stands for any number of lines, and inside a line for any text. Two lines are
/// played rather than run: scripts/daemon.sh starts the built daemon (the native build it would make takes
/// minutes), and "socat - UNIX-CONNECT:PATH" opens the QMP session. /tmp/ and /run/user/1000 are mapped
/// into the test's own directory, so nothing lands in the real ones.
/// </summary>
public partial class ReadmeTests
{
    private static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
        {
            if (File.Exists(Path.Combine(d.FullName, "SharpBlock.slnx")) && File.Exists(Path.Combine(d.FullName, "README.md")))
                return d.FullName;
        }

        throw new InvalidOperationException("the repository's README.md is not above " + AppContext.BaseDirectory);
    }

    /// <summary>One step of a console block: a command or QMP input, with the output lines shown after it.</summary>
    private sealed record Step(bool IsQmp, string Text, List<string> Expected);

    internal static List<List<string>> ConsoleBlocks(string markdown)
    {
        var blocks = new List<List<string>>();
        List<string>? current = null;
        foreach (string line in markdown.Split('\n'))
        {
            if (current == null && line.TrimEnd() == "```console")
            {
                current = [];
            }
            else if (current != null && line.TrimEnd() == "```")
            {
                blocks.Add(current);
                current = null;
            }
            else
            {
                current?.Add(line.TrimEnd());
            }
        }

        return blocks;
    }

    private static List<Step> Steps(List<string> block)
    {
        var steps = new List<Step>();
        for (int i = 0; i < block.Count; i++)
        {
            string line = block[i];
            if (line.StartsWith("$ ", StringComparison.Ordinal))
            {
                var cmd = new StringBuilder(line[2..]);
                while (cmd.ToString().EndsWith('\\') && i + 1 < block.Count)
                {
                    cmd.Length--;
                    cmd.Append(' ').Append(block[++i].Trim());
                }

                steps.Add(new Step(false, cmd.ToString(), []));
            }
            else if (line.StartsWith("{\"execute\"", StringComparison.Ordinal))
            {
                steps.Add(new Step(true, line, []));
            }
            else if (steps.Count > 0)
            {
                steps[^1].Expected.Add(line);
            }
            else
            {
                // Output before any command: the greeting of a session opened in an earlier block is not a thing.
                throw new InvalidOperationException("README console block starts with output: " + line);
            }
        }

        return steps;
    }

    /// <summary>Whether the actual lines match the expected ones, "..." lines and "..." inside lines as wildcards.</summary>
    internal static bool LinesMatch(IReadOnlyList<string> expected, IReadOnlyList<string> actual)
    {
        bool Match(int e, int a)
        {
            if (e == expected.Count)
                return a == actual.Count;
            if (expected[e] == "...")
            {
                for (int k = a; k <= actual.Count; k++)
                {
                    if (Match(e + 1, k))
                        return true;
                }

                return false;
            }

            return a < actual.Count && LineMatches(expected[e], actual[a]) && Match(e + 1, a + 1);
        }

        return Match(0, 0);
    }

    internal static bool LineMatches(string expected, string actual)
    {
        string pattern = "^" + string.Join(".*", expected.Split("...").Select(Regex.Escape)) + "$";
        return Regex.IsMatch(actual, pattern, RegexOptions.Singleline, TimeSpan.FromSeconds(5));
    }

    [Theory]
    [InlineData(new[] { "a", "...", "c" }, new[] { "a", "b", "b", "c" }, true)]
    [InlineData(new[] { "a", "...", "c" }, new[] { "a", "c" }, true)]
    [InlineData(new[] { "x ... z" }, new[] { "x y y z" }, true)]
    [InlineData(new[] { "a", "c" }, new[] { "a", "b", "c" }, false)]
    [InlineData(new[] { "x ... z" }, new[] { "x y y" }, false)]
    [InlineData(new[] { "a" }, new[] { "a", "b" }, false)]
    public void The_output_matcher_takes_dots_for_anything_and_nothing_else(string[] expected, string[] actual, bool match) =>
        Assert.Equal(match, LinesMatch(expected, actual));

    [Fact]
    public async Task Every_console_example_in_the_readme_runs_as_written()
    {
        foreach (var tool in new[] { "qemu-img", "nbdinfo" })
            Tools.Require(tool);
        using var dir = new TempDir();
        string tmp = Path.Combine(dir.Path, "tmp"), run = Path.Combine(dir.Path, "run"), work = Path.Combine(dir.Path, "work"), bin = Path.Combine(dir.Path, "bin");
        foreach (var d in new[] { tmp, run, work, bin })
            Directory.CreateDirectory(d);
        // "sharpblock" on the PATH, as the README's export line puts the native one there.
        string wrapper = Path.Combine(bin, "sharpblock");
        await File.WriteAllTextAsync(wrapper, $"#!/bin/sh\nexec dotnet '{Tools.SharpBlockDll}' \"$@\"\n");
        File.SetUnixFileMode(wrapper, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        // One pass, so a mapped path (itself under the system's /tmp) is not mapped again.
        string Map(string s) => Regex.Replace(s, "/run/user/1000|/tmp/", m => m.Value == "/tmp/" ? tmp + "/" : run);

        var daemons = new List<Process>();
        QmpLineSession? session = null;
        var blocks = ConsoleBlocks(await File.ReadAllTextAsync(Path.Combine(RepoRoot(), "README.md")));
        Assert.True(blocks.Count >= 4, "the README has fewer console blocks than it used to");
        int ran = 0;
        try
        {
            foreach (var step in blocks.SelectMany(Steps))
            {
                string text = Map(step.Text);
                var expected = step.Expected.Select(Map).ToList();
                List<string> actual;
                if (step.IsQmp)
                {
                    Assert.True(session != null, "QMP input with no session open: " + step.Text);
                    actual = [await session.CommandAsync(text)];
                }
                else if (text.StartsWith("scripts/daemon.sh", StringComparison.Ordinal))
                {
                    var p = StartDaemon(text["scripts/daemon.sh".Length..], work, bin, run);
                    daemons.Add(p);
                    actual = [];
                    for (int i = 0; i < expected.Count; i++)
                        actual.Add(await p.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60)) ?? "");
                }
                else if (text.StartsWith("socat - UNIX-CONNECT:", StringComparison.Ordinal))
                {
                    string path = text["socat - UNIX-CONNECT:".Length..].Trim();
                    await SocketWait.ForListenerAsync(path);
                    session = await QmpLineSession.ConnectAsync(path);
                    actual = [session.Greeting];
                }
                else if (text.StartsWith("export PATH=", StringComparison.Ordinal))
                {
                    // The test put the tool on the PATH already (bin/ above).
                    actual = [];
                    expected = [];
                }
                else
                {
                    var r = await Shell(text, work, bin, run);
                    Assert.True(r.ExitCode == 0, $"README command failed (exit {r.ExitCode}): {step.Text}\n{r.Stdout}{r.Stderr}");
                    actual = [.. r.Stdout.TrimEnd('\n').Split('\n').Where(l => l.Length > 0 || expected.Count > 0)];
                    if (r.Stdout.Length == 0)
                        actual = [];
                }

                if (expected.Count > 0 || step.IsQmp)
                {
                    Assert.True(expected.Count == 0 || LinesMatch(expected, actual),
                        $"README step: {step.Text}\n--- the README shows\n{string.Join('\n', expected)}\n--- it printed\n{string.Join('\n', actual)}");
                }

                ran++;
            }
        }
        finally
        {
            if (session != null)
                await session.DisposeAsync();
            foreach (var p in daemons)
            {
                if (!p.HasExited)
                    p.Kill();
                await p.WaitForExitAsync();
                p.Dispose();
            }
        }

        Assert.True(ran >= 20, $"only {ran} README steps ran");
    }

    [Fact]
    public async Task The_library_example_builds_in_a_new_console_project_with_warnings_as_errors_and_runs()
    {
        Tools.Require("qemu-img");
        string readme = await File.ReadAllTextAsync(Path.Combine(RepoRoot(), "README.md"));
        int start = readme.IndexOf("```csharp\n", StringComparison.Ordinal);
        Assert.True(start >= 0, "the README has no C# example");
        start += "```csharp\n".Length;
        string program = readme[start..readme.IndexOf("```", start, StringComparison.Ordinal)];

        using var dir = new TempDir();
        string core = Path.Combine(AppContext.BaseDirectory, "SharpBlock.Core.dll");
        await File.WriteAllTextAsync(dir.File("app.csproj"), $$"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <Nullable>enable</Nullable>
                <ImplicitUsings>enable</ImplicitUsings>
                <TreatWarningsAsErrors>true</TreatWarningsAsErrors>
                <AnalysisLevel>latest</AnalysisLevel>
              </PropertyGroup>
              <ItemGroup>
                <Reference Include="{{core}}" />
              </ItemGroup>
            </Project>
            """);
        await File.WriteAllTextAsync(dir.File("Program.cs"), program);
        var build = await Tools.RunAsync("dotnet", ["build", dir.File("app.csproj"), "-nologo", "-v", "q", "-o", dir.File("out")], timeoutMs: 300_000);
        Assert.True(build.ExitCode == 0, "the README's library example does not build:\n" + build.Stdout + build.Stderr);

        var run = await Shell($"dotnet '{dir.File("out/app.dll")}'", dir.Path, dir.Path, dir.Path);
        Assert.True(run.ExitCode == 0, run.Stdout + run.Stderr);
        Assert.Equal("qcow2", run.Stdout.Trim());
        (await Tools.RunAsync("qemu-img", "check", dir.File("disk.qcow2"))).Ok();
        var read = (await Tools.RunAsync("qemu-io", "-f", "qcow2", "-c", "read -P 0x68 1M 1", dir.File("disk.qcow2"))).Ok();
        Assert.DoesNotContain("Pattern verification failed", read.Stdout, StringComparison.Ordinal);
    }

    private static Process StartDaemon(string args, string work, string bin, string run)
    {
        var psi = new ProcessStartInfo("bash") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = work };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("exec sharpblock daemon " + args);
        Environ(psi, bin, run);
        return Process.Start(psi)!;
    }

    private static async Task<(int ExitCode, string Stdout, string Stderr)> Shell(string command, string work, string bin, string run)
    {
        var psi = new ProcessStartInfo("bash") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = work };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(command);
        Environ(psi, bin, run);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await p.WaitForExitAsync(cts.Token);
        return (p.ExitCode, await stdout, await stderr);
    }

    private static void Environ(ProcessStartInfo psi, string bin, string run)
    {
        psi.Environment["PATH"] = bin + ":" + Environment.GetEnvironmentVariable("PATH");
        psi.Environment["XDG_RUNTIME_DIR"] = run;
    }

    /// <summary>A QMP session as socat shows it: one line out per line typed (events are not part of the README).</summary>
    private sealed class QmpLineSession : IAsyncDisposable
    {
        private readonly Socket _socket;
        private readonly StreamReader _reader;
        private readonly StreamWriter _writer;

        private QmpLineSession(Socket socket, string greeting)
        {
            _socket = socket;
            var stream = new NetworkStream(socket, ownsSocket: false);
            _reader = new StreamReader(stream);
            _writer = new StreamWriter(stream) { AutoFlush = true, NewLine = "\n" };
            Greeting = greeting;
        }

        public string Greeting { get; private set; }

        public static async Task<QmpLineSession> ConnectAsync(string path)
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(path));
            var s = new QmpLineSession(socket, "");
            s.Greeting = await s.ReadReplyAsync();
            return s;
        }

        public async Task<string> CommandAsync(string line)
        {
            await _writer.WriteLineAsync(line);
            return await ReadReplyAsync();
        }

        private async Task<string> ReadReplyAsync()
        {
            while (true)
            {
                string? line = await _reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60));
                if (line == null)
                    return "";
                line = line.TrimEnd('\r');
                if (!line.StartsWith("{\"event\"", StringComparison.Ordinal))
                    return line;
            }
        }

        public ValueTask DisposeAsync()
        {
            _socket.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
