using System.Net.Sockets;
using SharpBlock.Net;
using SharpBlock.Testing;

namespace SharpBlock.Nbd.Tests.Net;

/// <summary>The one listener QMP and NBD share: owner-only socket files, stale files replaced, files removed on close.</summary>
public class SocketListenerTests
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    [Fact]
    public async Task Nbd_unix_socket_is_private_to_its_owner_and_serves()
    {
        await using var s = await NbdTestServer.StartAsync();
        Assert.Equal(OwnerOnly, File.GetUnixFileMode(s.Socket));
        await s.ExportFileAsync("d0", await RawFileAsync(s.Dir), writable: false);
        var (connected, _) = await RawNbdClient.OpenAsync(s.Socket, "d0");
        await using (connected)
            Assert.Equal(["unix:" + s.Socket], s.Server.Addresses);
    }

    [Fact]
    public void Unix_socket_replaces_a_stale_file_and_removes_it_on_close()
    {
        using var dir = new TempDir();
        string path = dir.File("stale.sock");
        File.WriteAllText(path, "left over");
        using (var l = SocketListener.ListenUnix(path))
        {
            Assert.Equal(OwnerOnly, File.GetUnixFileMode(path));
            Assert.Null(l.TcpEndPoint);
        }

        Assert.False(File.Exists(path));
    }

    [Fact]
    public void A_directory_in_the_way_is_refused()
    {
        using var dir = new TempDir();
        string path = dir.File("d");
        Directory.CreateDirectory(path);
        var ex = Assert.Throws<IOException>(() => SocketListener.ListenUnix(path));
        Assert.Equal($"'{path}' is a directory", ex.Message);
    }

    [Fact]
    public async Task Each_client_reaches_the_server_with_its_peer_name()
    {
        using var dir = new TempDir();
        string path = dir.File("peer.sock");
        var peer = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var l = SocketListener.ListenUnix(path);
        l.Start((stream, name) =>
        {
            stream.Dispose();
            peer.TrySetResult(name);
        });
        using var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await client.ConnectAsync(new UnixDomainSocketEndPoint(path));
        Assert.Equal("unix:" + path, await peer.Task.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    private static async Task<string> RawFileAsync(TempDir dir)
    {
        string path = dir.File("d0.raw");
        await File.WriteAllBytesAsync(path, new byte[65536]);
        return path;
    }
}
