using System.Diagnostics;

namespace SharpBlock.Testing;

/// <summary>
/// A real qemu-storage-daemon 7.2 with one QMP monitor on a Unix socket, connected and negotiated: the
/// oracle that parity tests send the same commands to as to our daemon.
/// </summary>
public sealed class QemuStorageDaemon : IAsyncDisposable
{
    private readonly Process _process;

    private QemuStorageDaemon(Process process, QmpTestClient client)
    {
        _process = process;
        Client = client;
    }

    public QmpTestClient Client { get; }

    /// <summary>Starts the daemon with its monitor at socketPath, extra arguments after it.</summary>
    public static async Task<QemuStorageDaemon> StartAsync(string socketPath, params string[] extra)
    {
        var psi = new ProcessStartInfo(Tools.Require("qemu-storage-daemon"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string a in (string[])["--chardev", $"socket,id=m0,path={socketPath},server=on,wait=off", "--monitor", "chardev=m0", .. extra])
            psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        try
        {
            await Tools.WaitForFileAsync(socketPath);
            return new QemuStorageDaemon(p, await QmpTestClient.ConnectUnixAsync(socketPath));
        }
        catch
        {
            p.Kill();
            p.Dispose();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await Client.ExecuteAsync("quit");
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or TimeoutException)
        {
        }

        await Client.DisposeAsync();
        if (!_process.WaitForExit(10_000))
            _process.Kill();
        _process.Dispose();
    }
}
