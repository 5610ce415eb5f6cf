using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Nbd;

/// <summary>The sharpblock executable with qemu-storage-daemon's NBD options.</summary>
public class NbdDaemonProcessTests
{
    [Fact]
    public async Task Nbd_server_and_export_options_of_a_node()
    {
        using var dir = new TempDir();
        string path = dir.PatternFile("disk.raw", 2 << 20);
        string nbd = dir.File("nbd.sock");
        string qmp = dir.File("qmp.sock");
        using var p = Tools.StartSharpBlock("daemon", "--qmp", "unix:" + qmp,
            "--blockdev", $"driver=file,node-name=f0,filename={path}",
            "--nbd-server", $"addr.type=unix,addr.path={nbd}",
            "--export", "type=nbd,id=e0,node-name=f0,writable=on,name=exp,description=scratch disk");
        try
        {
            await SocketWait.ForListenerAsync(qmp);
            Assert.Equal("2097152", (await Tools.RunAsync("nbdinfo", "--size", $"nbd+unix:///exp?socket={nbd}")).Ok().Stdout.Trim());
            var list = (await Tools.RunAsync("nbdinfo", "--list", $"nbd+unix:///?socket={nbd}")).Ok().Stdout;
            Assert.Contains("export=\"exp\"", list, StringComparison.Ordinal);
            Assert.Contains("description: scratch disk", list, StringComparison.Ordinal);
            (await Tools.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 0x3c 4k 4k", $"nbd+unix:///exp?socket={nbd}")).Ok();
            await using (var c = await QmpTestClient.ConnectUnixAsync(qmp))
                await c.ExecuteAsync("quit");
            Assert.True(p.WaitForExit(20000));
            Assert.Equal(0, p.ExitCode);
            Assert.All(File.ReadAllBytes(path)[4096..8192], b => Assert.Equal(0x3c, b));
        }
        finally
        {
            if (!p.HasExited)
                p.Kill();
        }
    }

    [Fact]
    public async Task An_exported_bare_node_is_busy_until_the_server_stops()
    {
        using var dir = new TempDir();
        string path = dir.PatternFile("disk.raw", 1 << 20);
        string nbd = dir.File("nbd.sock");
        string qmp = dir.File("qmp.sock");
        using var p = Tools.StartSharpBlock("daemon", "--qmp", "unix:" + qmp,
            "--blockdev", $"driver=file,node-name=f0,filename={path}",
            "--nbd-server", $"addr.type=unix,addr.path={nbd}",
            "--export", "type=nbd,id=e0,node-name=f0,name=exp");
        try
        {
            await SocketWait.ForListenerAsync(qmp);
            await using var c = await QmpTestClient.ConnectUnixAsync(qmp);
            var (cls, desc) = await c.ErrorAsync("blockdev-del", "{\"node-name\": \"f0\"}");
            Assert.Equal("GenericError", cls);
            Assert.Equal("Node f0 is in use", desc);
            await c.ReturnAsync("nbd-server-stop");
            // The export's private device let go of the node, which still works and can now be deleted.
            Assert.NotEqual(0, (await Tools.RunAsync("nbdinfo", "--size", $"nbd+unix:///exp?socket={nbd}")).ExitCode);
            await c.ReturnAsync("blockdev-del", "{\"node-name\": \"f0\"}");
            await c.ExecuteAsync("quit");
            Assert.True(p.WaitForExit(20000));
            Assert.Equal(0, p.ExitCode);
        }
        finally
        {
            if (!p.HasExited)
                p.Kill();
        }
    }

    [Fact]
    public async Task Bad_nbd_options_are_refused()
    {
        var r = await Tools.RunAsync("sharpblock", "daemon", "--export", "type=nbd,id=e0,device=d0");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("--export type=nbd needs --nbd-server", r.Stderr, StringComparison.Ordinal);
        r = await Tools.RunAsync("sharpblock", "daemon", "--nbd-server", "addr.type=vsock,addr.cid=3");
        Assert.NotEqual(0, r.ExitCode);
    }
}
