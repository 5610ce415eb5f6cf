using System.Diagnostics;
using SharpBlock.Testing;

namespace SharpBlock.Cli.Tests.Daemon;

/// <summary>What one client or one environment must not be able to do to a running daemon process.</summary>
public class DaemonHardeningTests
{
    /// <summary>Starts the daemon through a shell that first sets the umask, as an init script would.</summary>
    private static Process StartWithUmask(string umask, params string[] args)
    {
        var psi = new ProcessStartInfo("/bin/sh") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add($"umask {umask}; exec dotnet \"$0\" \"$@\"");
        psi.ArgumentList.Add(Tools.SharpBlockDll);
        psi.ArgumentList.Add("daemon");
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        return Process.Start(psi)!;
    }

    private static async Task QuitAsync(Process p, string sock)
    {
        await using (var c = await QmpTestClient.ConnectUnixAsync(sock))
            await c.ReturnAsync("quit");
        using var cts = new CancellationTokenSource(30000);
        await p.WaitForExitAsync(cts.Token);
        Assert.Equal(0, p.ExitCode);
    }

    [Theory]
    [InlineData("077")]
    [InlineData("000")]
    public async Task The_pidfile_is_mode_0644_whatever_the_umask(string umask)
    {
        using var dir = new TempDir();
        string sock = dir.File("q.sock"), pid = dir.File("pid");
        using var p = StartWithUmask(umask, "--qmp", $"unix:{sock},server=on,wait=off", "--pidfile", pid);
        await SocketWait.ForListenerAsync(sock);
        await Tools.WaitForFileAsync(pid);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead, File.GetUnixFileMode(pid));
        await QuitAsync(p, sock);
    }

    [Fact]
    public async Task A_flood_of_refused_messages_logs_a_bounded_number_of_lines_and_says_how_many_it_held_back()
    {
        using var dir = new TempDir();
        string sock = dir.File("q.sock");
        using var p = StartWithUmask("022", "--qmp", $"unix:{sock},server=on,wait=off");
        var stderr = p.StandardError.ReadToEndAsync();
        await SocketWait.ForListenerAsync(sock);
        await using var c = await QmpTestClient.ConnectUnixAsync(sock);
        // Too deep to parse: each one is refused and would be worth a warning of its own.
        int depth = SharpBlock.Qmp.Protocol.QmpFrameScanner.MaxDepth + 1;
        string deep = new string('[', depth) + new string(']', depth) + "\n";
        const int flood = 2000;
        var sw = Stopwatch.StartNew();
        var send = Task.Run(async () =>
        {
            for (int i = 0; i < flood; i++)
                await c.SendRawAsync(deep);
        });
        for (int i = 0; i < flood; i++)
            Assert.Contains("nesting", (await c.ReadReplyAsync()).GetProperty("error").GetProperty("desc").GetString(), StringComparison.Ordinal);
        await send;
        double seconds = sw.Elapsed.TotalSeconds;
        // A later refusal, in a new second, reports what was held back.
        await Task.Delay(1100);
        await c.SendRawAsync(deep);
        await c.ReadReplyAsync();
        await c.ReturnAsync("quit");
        using var cts = new CancellationTokenSource(30000);
        await p.WaitForExitAsync(cts.Token);

        string[] lines = (await stderr).Split('\n');
        int refused = lines.Count(l => l.Contains("message refused", StringComparison.Ordinal));
        int allowed = (int)((Math.Ceiling(seconds) + 2) * SharpBlock.Qmp.Server.LogRateLimiter.MaxPerSecond);
        Assert.InRange(refused, 1, allowed);
        Assert.Contains(lines, l => l.Contains("more 'frame-refused' messages were suppressed", StringComparison.Ordinal));
        Assert.True(lines.Length < allowed + 20, $"{lines.Length} lines on stderr");
    }
}
