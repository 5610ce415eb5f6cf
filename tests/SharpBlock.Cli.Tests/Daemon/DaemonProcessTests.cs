using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using SharpBlock.Testing;

namespace SharpBlock.Cli.Tests.Daemon;

/// <summary>The real `sharpblock daemon` process, driven the way an operator or a management tool would.</summary>
public class DaemonProcessTests
{
    private static async Task<int> WaitExitAsync(Process p, int ms = 30000)
    {
        using var cts = new CancellationTokenSource(ms);
        await p.WaitForExitAsync(cts.Token);
        return p.ExitCode;
    }

    [Fact]
    public async Task With_no_options_it_listens_on_a_default_socket_it_prints()
    {
        using var dir = new TempDir();
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Tools.SharpBlockDll);
        psi.ArgumentList.Add("daemon");
        psi.Environment["XDG_RUNTIME_DIR"] = dir.Path;
        using var p = Process.Start(psi)!;
        string line = (await p.StandardOutput.ReadLineAsync())!;
        string expected = Path.Combine(dir.Path, "sharpblock", "qmp.sock");
        Assert.Equal("sharpblock: QMP listening on " + expected, line);
        await SocketWait.ForListenerAsync(expected);
        await using (var c = await QmpTestClient.ConnectUnixAsync(expected))
        {
            await c.ReturnAsync("query-version");
            await c.ReturnAsync("quit");
        }

        Assert.Equal(0, await WaitExitAsync(p));
        Assert.False(File.Exists(expected), "the socket file is removed at exit");
    }

    [Fact]
    public async Task A_second_daemon_refuses_a_socket_a_live_one_listens_on_and_replaces_a_stale_one()
    {
        using var dir = new TempDir();
        string sock = dir.File("q.sock");
        using var first = Tools.StartSharpBlock("daemon", "--qmp", $"unix:{sock},server=on,wait=off");
        await SocketWait.ForListenerAsync(sock);

        var second = await Tools.RunAsync("sharpblock", ["daemon", "--qmp", $"unix:{sock},server=on,wait=off"], stdin: "");
        Assert.Equal(1, second.ExitCode);
        Assert.Equal($"sharpblock: Failed to bind socket to {sock}: Address already in use (another process is listening on it)", second.Stderr.Trim());
        // The first daemon still answers on its socket, which the refused one did not delete.
        await using (var c = await QmpTestClient.ConnectUnixAsync(sock))
        {
            await c.ReturnAsync("query-version");
            Assert.Equal(0, Posix.Kill(first.Id, 9));
        }

        // Killed, it leaves its socket file behind with nobody listening: the next daemon takes the path.
        Assert.Equal(137, await WaitExitAsync(first));
        Assert.True(File.Exists(sock));
        using var third = Tools.StartSharpBlock("daemon", "--qmp", $"unix:{sock},server=on,wait=off");
        await SocketWait.ForListenerAsync(sock);
        await using (var c = await QmpTestClient.ConnectUnixAsync(sock))
            await c.ReturnAsync("quit");
        Assert.Equal(0, await WaitExitAsync(third));
    }

    [Fact]
    public async Task A_killed_daemon_leaves_no_runtime_pipes_or_sockets_in_the_temp_folder()
    {
        using var dir = new TempDir();
        string sock = dir.File("q.sock");
        using var p = Tools.StartSharpBlock("daemon", "--qmp", $"unix:{sock},server=on,wait=off");
        await SocketWait.ForListenerAsync(sock);
        int pid = p.Id;
        Assert.Equal(0, Posix.Kill(pid, 9));
        await WaitExitAsync(p);
        var left = Directory.GetFileSystemEntries(Path.GetTempPath())
            .Select(Path.GetFileName)
            .Where(n => n!.StartsWith($"dotnet-diagnostic-{pid}-", StringComparison.Ordinal) || n.StartsWith($"clr-debug-pipe-{pid}-", StringComparison.Ordinal))
            .ToList();
        Assert.Empty(left);
    }

    [Fact]
    public async Task Blockdev_options_in_both_forms_then_sigterm_flushes_and_exits_cleanly()
    {
        using var dir = new TempDir();
        string a = dir.PatternFile("a.img", 65536), b = dir.PatternFile("b.img", 65536);
        string sock = dir.File("q.sock"), pid = dir.File("pid");
        using var p = Tools.StartSharpBlock("daemon", "--qmp", $"unix:{sock},server=on,wait=off",
            "--blockdev", $"driver=raw,node-name=a,file.driver=file,file.filename={a}",
            "--blockdev", "{\"driver\": \"raw\", \"id\": \"b\", \"file\": {\"driver\": \"file\", \"filename\": \"" + b + "\"}}",
            "--pidfile", pid);
        await SocketWait.ForListenerAsync(sock);
        await Tools.WaitForFileAsync(pid);
        Assert.Equal(p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture), File.ReadAllText(pid).Trim());
        await using (var c = await QmpTestClient.ConnectUnixAsync(sock))
        {
            var nodes = await c.ReturnAsync("query-named-block-nodes");
            Assert.Contains(nodes.EnumerateArray(), n => n.GetProperty("node-name").GetString() == "a");
            Assert.Equal("b", (await c.ReturnAsync("query-block"))[0].GetProperty("device").GetString());
        }

        Assert.Equal(0, Posix.Kill(p.Id, 15));
        Assert.Equal(0, await WaitExitAsync(p));
        Assert.False(File.Exists(pid));
        Assert.False(File.Exists(sock));
    }

    [Fact]
    public async Task Tcp_monitor_through_chardev_and_monitor_options()
    {
        int port;
        using (var l = new TcpListener(IPAddress.Loopback, 0))
        {
            l.Start();
            port = ((IPEndPoint)l.LocalEndpoint).Port;
        }

        using var p = Tools.StartSharpBlock("daemon", "--chardev", $"socket,id=m0,host=127.0.0.1,port={port},server=on,wait=off", "--monitor", "chardev=m0");
        QmpTestClient? c = null;
        for (int i = 0; i < 300 && c == null; i++)
        {
            try
            {
                c = await QmpTestClient.ConnectTcpAsync(new IPEndPoint(IPAddress.Loopback, port));
            }
            catch (SocketException)
            {
                await Task.Delay(50);
            }
        }

        Assert.NotNull(c);
        await using (c)
        {
            await c.ReturnAsync("query-version");
            await c.ReturnAsync("quit");
        }

        Assert.Equal(0, await WaitExitAsync(p));
    }

    [Fact]
    public async Task Stdio_monitor_speaks_qmp_on_standard_streams()
    {
        var r = await Tools.RunAsync("sharpblock", ["daemon", "--qmp", "stdio"], stdin:
            "{\"execute\": \"qmp_capabilities\"}\n{\"execute\": \"query-block\", \"id\": 1}\n{\"execute\": \"quit\"}\n");
        r.Ok();
        string[] lines = r.Stdout.Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("{\"QMP\": {\"version\": {\"qemu\": {\"major\": 2, \"minor\": 1, \"micro\": 0}", lines[0], StringComparison.Ordinal);
        Assert.Equal("{\"return\": {}}", lines[1]);
        Assert.Equal("{\"return\": [], \"id\": 1}", lines[2]);
        Assert.Equal("{\"return\": {}}", lines[3]);
    }

    [Theory]
    [InlineData(new[] { "daemon", "--bogus" }, "unrecognized option '--bogus'\nTry 'sharpblock daemon --help' for more information.")]
    [InlineData(new[] { "daemon", "--qmp", "pipe:x" }, "expected unix:PATH, tcp:HOST:PORT or stdio")]
    [InlineData(new[] { "daemon", "--monitor", "chardev=nope" }, "no --chardev with id 'nope'")]
    [InlineData(new[] { "daemon", "--qmp", "stdio", "--blockdev", "driver=raw,node-name=x,file.driver=file,file.filename=/nonexistent" }, "Could not open '/nonexistent': No such file or directory")]
    [InlineData(new[] { "daemon", "--qmp", "stdio", "--blockdev", "driver=raw,node-name=x,read-only=perhaps,file=y" }, "Parameter 'read-only' expects 'on' or 'off'")]
    [InlineData(new[] { "daemon", "--qmp", "stdio", "--blockdev", "{\"driver\": \"raw\", \"id\": \"a\", \"file\": {\"driver\": \"file\", \"filename\": \"/x\", \"filename\": \"/y\"}}" }, "sharpblock: JSON parse error, duplicate key")]
    [InlineData(new[] { "frobnicate" }, "unknown command 'frobnicate'")]
    public async Task Bad_command_lines_fail_with_one_clear_line(string[] args, string message)
    {
        var r = await Tools.RunAsync("sharpblock", args, stdin: "");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(message, r.Stderr, StringComparison.Ordinal);
    }
}
