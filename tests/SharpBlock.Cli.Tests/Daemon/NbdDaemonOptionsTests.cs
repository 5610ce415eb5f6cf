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
        Assert.Equal(new NbdExportOption(null, "disk0", null, true, null), o.Exports[0]);
        Assert.Equal(new NbdExportOption("e1", null, "n1", false, "other"), o.Exports[1]);
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
