using SharpBlock.Cli.Daemon;
using SharpBlock.Schema;

namespace SharpBlock.Cli.Tests.Daemon;

/// <summary>qemu-storage-daemon's --nbd-server and --export spellings.</summary>
public class NbdDaemonOptionsTests
{
    [Fact]
    public void Inet_and_unix_server_addresses()
    {
        var o = DaemonOptions.Parse(["--nbd-server", "addr.type=inet,addr.host=127.0.0.1,addr.port=10809"]);
        Assert.Equal(SocketAddressKind.Inet, o.NbdServer!.Type);
        Assert.Equal("127.0.0.1", o.NbdServer.Inet!.Host);
        Assert.Equal("10809", o.NbdServer.Inet.Port);

        o = DaemonOptions.Parse(["--nbd-server=addr.type=unix,addr.path=/run/nbd.sock"]);
        Assert.Equal("/run/nbd.sock", o.NbdServer!.Unix!.Path);
    }

    [Fact]
    public void Exports_of_devices_and_nodes()
    {
        var o = DaemonOptions.Parse([
            "--nbd-server", "addr.type=unix,addr.path=/tmp/n.sock",
            "--export", "type=nbd,device=disk0,writable=on",
            "--export", "type=nbd,id=e1,node-name=n1,name=other",
        ]);
        var (a, b) = (o.Exports[0], o.Exports[1]);
        Assert.Equal(("disk0", "disk0", true, false, null), (a.Id, a.NodeName, a.Writable, a.Writethrough, a.Nbd!.Name));
        Assert.Equal(("e1", "n1", false, "other"), (b.Id, b.NodeName, b.Writable, b.Nbd!.Name));
    }

    [Fact]
    public void A_node_export_takes_block_export_adds_keys_and_needs_an_id()
    {
        string[] server = ["--nbd-server", "addr.type=unix,addr.path=/tmp/n.sock"];
        var o = DaemonOptions.Parse([.. server, "--export", "type=nbd,id=e0,node-name=n0,writethrough=on,description=scratch"]);
        Assert.Equal((BlockExportType.Nbd, true, "scratch"), (o.Exports[0].Type, o.Exports[0].Writethrough, o.Exports[0].Nbd!.Description));
        var ex = Assert.Throws<ArgumentException>(() => DaemonOptions.Parse([.. server, "--export", "type=nbd,node-name=n0"]));
        Assert.Equal("--export: parameter 'id' is missing", ex.Message);
    }

    [Theory]
    [InlineData(new string[0], 2, 1)]
    [InlineData(new[] { "--qmp-version", "2.1" }, 2, 1)]
    [InlineData(new[] { "--qmp-version=7.2" }, 7, 2)]
    public void The_reported_qemu_version_is_the_seeds_unless_asked(string[] args, int major, int minor)
    {
        var o = DaemonOptions.Parse(args);
        var server = new SharpBlock.Qmp.Server.QmpServer(new SharpBlock.Graph.BlockGraph()) { ReportedVersion = o.QmpVersion };
        Assert.Equal((major, minor, 0L), ((int)server.Version.Qemu.Major, (int)server.Version.Qemu.Minor, server.Version.Qemu.Micro));
    }

    [Fact]
    public void Unknown_qmp_versions_are_refused()
    {
        var ex = Assert.Throws<ArgumentException>(() => DaemonOptions.Parse(["--qmp-version", "9.0"]));
        Assert.Equal("--qmp-version: '9.0' is not 2.1 or 7.2", ex.Message);
    }

    [Theory]
    [InlineData("--export", "type=nbd,device=d", "--export type=nbd needs --nbd-server")]
    [InlineData("--nbd-server", "addr.type=vsock", "--nbd-server: addr.type 'vsock' is not supported (inet or unix)")]
    [InlineData("--nbd-server", "addr.type=inet,addr.host=h", "--nbd-server: parameter 'addr.port' is missing")]
    [InlineData("--nbd-server", "addr.type=unix,bogus=1", "--nbd-server: unknown parameter 'bogus'")]
    public void Bad_options_are_named(string option, string value, string message)
    {
        var ex = Assert.Throws<ArgumentException>(() => DaemonOptions.Parse([option, value]));
        Assert.Equal(message, ex.Message);
    }

    [Fact]
    public void Export_needs_exactly_one_of_device_and_node_name()
    {
        string[] server = ["--nbd-server", "addr.type=unix,addr.path=/tmp/n.sock"];
        var ex = Assert.Throws<ArgumentException>(() => DaemonOptions.Parse([.. server, "--export", "type=nbd,device=a,node-name=b"]));
        Assert.Equal("--export: exactly one of 'device' and 'node-name' is required", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => DaemonOptions.Parse([.. server, "--export", "type=nbd,device=a,writable=maybe"]));
        Assert.Equal("--export: parameter 'writable' expects 'on' or 'off'", ex.Message);
    }
}
