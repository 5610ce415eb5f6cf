using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Nbd;

/// <summary>
/// nbd-server-start with every SocketAddress branch of the seed, and nbd-server-add / eject as QEMU 2.1 has
/// them; nbdinfo is the client that must get through (or must not).
/// </summary>
public class NbdServerStartTests
{
    private const int Size = 1 << 20;

    private static async Task<QmpHarness> DeviceAsync(string extra = "")
    {
        var h = await QmpHarness.StartAsync();
        await h.AddRawAsync("disk0", h.Dir.PatternFile("disk.raw", Size), extra);
        return h;
    }

    private static string Inet(string host, string port, string more = "") =>
        $$$"""{"addr": {"type": "inet", "data": {"host": "{{{host}}}", "port": "{{{port}}}"{{{more}}} } } }""";

    private static async Task<bool> ReachableAsync(string url)
    {
        var r = await Tools.RunAsync("nbdinfo", "--size", url);
        return r.ExitCode == 0 && r.Stdout.Trim() == Size.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    private static IPAddress? NonLoopbackIPv4()
    {
        foreach (var nic in NetworkInterface.GetAllNetworkInterfaces())
        {
            if (nic.OperationalStatus != OperationalStatus.Up)
                continue;
            foreach (var a in nic.GetIPProperties().UnicastAddresses)
            {
                if (a.Address.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(a.Address))
                    return a.Address;
            }
        }

        return null;
    }

    [Fact]
    public async Task Inet_with_a_numeric_port_listens_on_that_host_and_port()
    {
        await using var h = await DeviceAsync();
        int port = FreePort();
        await h.Client.ReturnAsync("nbd-server-start", Inet("127.0.0.1", port.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        await h.ExportAsync("disk0", writable: false);
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, port), h.Server.Nbd.TcpEndPoint);
        Assert.True(await ReachableAsync($"nbd://127.0.0.1:{port}/disk0"));
    }

    [Fact]
    public async Task An_empty_host_listens_on_every_interface_for_IPv4_and_IPv6()
    {
        await using var h = await DeviceAsync();
        int port = FreePort();
        await h.Client.ReturnAsync("nbd-server-start", Inet("", port.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        await h.ExportAsync("disk0", writable: false);
        Assert.True(await ReachableAsync($"nbd://127.0.0.1:{port}/disk0"));
        Assert.True(await ReachableAsync($"nbd://[::1]:{port}/disk0"));
        if (NonLoopbackIPv4() is { } lan)
            Assert.True(await ReachableAsync($"nbd://{lan}:{port}/disk0"), "not reachable on " + lan);
    }

    [Fact]
    public async Task Ipv4_and_ipv6_choose_the_address_family()
    {
        await using (var h = await DeviceAsync())
        {
            int port = FreePort();
            await h.Client.ReturnAsync("nbd-server-start", Inet("", port.ToString(System.Globalization.CultureInfo.InvariantCulture), ", \"ipv4\": true"));
            await h.ExportAsync("disk0", writable: false);
            Assert.True(await ReachableAsync($"nbd://127.0.0.1:{port}/disk0"));
            Assert.False(await ReachableAsync($"nbd://[::1]:{port}/disk0"));
            if (NonLoopbackIPv4() is { } lan)
                Assert.True(await ReachableAsync($"nbd://{lan}:{port}/disk0"), "not reachable on " + lan);
        }

        await using (var h = await DeviceAsync())
        {
            int port = FreePort();
            await h.Client.ReturnAsync("nbd-server-start", Inet("", port.ToString(System.Globalization.CultureInfo.InvariantCulture), ", \"ipv6\": true"));
            await h.ExportAsync("disk0", writable: false);
            Assert.True(await ReachableAsync($"nbd://[::1]:{port}/disk0"));
            Assert.Equal(AddressFamily.InterNetworkV6, h.Server.Nbd.TcpEndPoint!.AddressFamily);
        }
    }

    [Fact]
    public async Task A_port_range_skips_ports_in_use_and_a_single_busy_port_is_refused()
    {
        await using var h = await DeviceAsync();
        using var squatter = new TcpListener(IPAddress.Loopback, 0);
        squatter.Start();
        int busy = ((IPEndPoint)squatter.LocalEndpoint).Port;
        string p = busy.ToString(System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(("GenericError", "Failed to bind socket: Address already in use"),
            await h.Client.ErrorAsync("nbd-server-start", Inet("127.0.0.1", p)));
        Assert.False(h.Server.Nbd.Running);

        await h.Client.ReturnAsync("nbd-server-start", Inet("127.0.0.1", p, $", \"to\": {Math.Min(busy + 20, 65535)}"));
        await h.ExportAsync("disk0", writable: false);
        int got = h.Server.Nbd.TcpEndPoint!.Port;
        Assert.InRange(got, busy + 1, busy + 20);
        Assert.True(await ReachableAsync($"nbd://127.0.0.1:{got}/disk0"));
    }

    [Fact]
    public async Task The_port_may_be_a_service_name()
    {
        // /etc/services names 10809 'nbd'; a range lets the test pass when another program holds 10809.
        await using var h = await DeviceAsync();
        await h.Client.ReturnAsync("nbd-server-start", Inet("127.0.0.1", "nbd", ", \"to\": 10849"));
        await h.ExportAsync("disk0", writable: false);
        int got = h.Server.Nbd.TcpEndPoint!.Port;
        Assert.InRange(got, 10809, 10849);
        Assert.True(await ReachableAsync($"nbd://127.0.0.1:{got}/disk0"));
        await h.Client.ReturnAsync("nbd-server-stop");
        Assert.Equal(("GenericError", "address resolution failed for 127.0.0.1:no-such-service: Servname not supported for ai_socktype"),
            await h.Client.ErrorAsync("nbd-server-start", Inet("127.0.0.1", "no-such-service")));
    }

    [Fact]
    public async Task An_fd_address_takes_a_listening_socket_passed_with_getfd()
    {
        await using var h = await DeviceAsync();
        await using var c = await QmpTestClient.ConnectUnixAsync(h.Dir.File("qmp.sock"));
        Assert.Equal(("GenericError", "No file descriptor supplied via SCM_RIGHTS"), await c.ErrorAsync("getfd", """{"fdname": "nbd0"}"""));
        Assert.Equal(("GenericError", "File descriptor named 'nbd0' has not been found"),
            await c.ErrorAsync("nbd-server-start", """{"addr": {"type": "fd", "data": {"str": "nbd0"}}}"""));
        Assert.Equal(("GenericError", "File descriptor named 'nbd0' not found"), await c.ErrorAsync("closefd", """{"fdname": "nbd0"}"""));

        // A socket the management tool bound and listens on, handed over as libvirt hands them to QEMU.
        // The test keeps its own copy open (closing a bound socket in .NET unlinks its file) but never accepts
        // on it, so every client that gets through was accepted by the daemon.
        string path = h.Dir.File("passed.sock");
        using var listening = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listening.Bind(new UnixDomainSocketEndPoint(path));
        listening.Listen(8);
        {
            ScmRights.Send(c.Socket, System.Text.Encoding.UTF8.GetBytes("""{"execute": "getfd", "arguments": {"fdname": "1bad"}}"""), (int)listening.Handle);
            Assert.Equal("Parameter 'fdname' expects a name not starting with a digit",
                (await c.ReadReplyAsync()).GetProperty("error").GetProperty("desc").GetString());
            ScmRights.Send(c.Socket, System.Text.Encoding.UTF8.GetBytes("""{"execute": "getfd", "arguments": {"fdname": "nbd0"}}"""), (int)listening.Handle);
            Assert.True((await c.ReadReplyAsync()).TryGetProperty("return", out _));
        }

        await c.ReturnAsync("nbd-server-start", """{"addr": {"type": "fd", "data": {"str": "nbd0"}}}""");
        await c.ReturnAsync("nbd-server-add", """{"device": "disk0"}""");
        Assert.True(await ReachableAsync($"nbd+unix:///disk0?socket={path}"));
        // The server took the descriptor over: the name is gone from the session.
        Assert.Equal(("GenericError", "File descriptor named 'nbd0' not found"), await c.ErrorAsync("closefd", """{"fdname": "nbd0"}"""));
    }

    [Fact]
    public async Task A_writable_export_of_a_read_only_device_is_exported_read_only()
    {
        await using var h = await DeviceAsync(", \"read-only\": true");
        await h.StartNbdAsync();
        await h.ExportAsync("disk0", writable: true);
        var list = (await Tools.RunAsync("nbdinfo", "--list", $"nbd+unix:///?socket={h.NbdSocket}")).Ok();
        Assert.Contains("is_read_only: true", list.Stdout, StringComparison.Ordinal);
        // qemu-io cannot even open a read-only export for writing; reading works.
        var write = await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write 0 512", h.Url("disk0"));
        Assert.Equal(1, write.ExitCode);
        Assert.Contains("Permission denied", write.Stderr, StringComparison.Ordinal);
        (await Tools.RunAsync("qemu-io", "-r", "-f", "raw", "-c", "read 0 512", h.Url("disk0"))).Ok();
    }
}
