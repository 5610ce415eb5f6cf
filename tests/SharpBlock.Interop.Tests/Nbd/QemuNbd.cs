using System.Diagnostics;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Nbd;

/// <summary>A qemu-nbd serving on a Unix socket for one test, killed at the end.</summary>
internal sealed class QemuNbd : IAsyncDisposable
{
    private readonly Process _process;

    private QemuNbd(Process p, string socket)
    {
        _process = p;
        Socket = socket;
    }

    public string Socket { get; }

    /// <summary>A raw file, writable, as export EXPORT, for clients that write and discard.</summary>
    public static Task<QemuNbd> StartAsync(string file, string socket, string export) =>
        StartAsync(socket, "-f", "raw", "-t", "-x", export, "--shared=8", "--discard=unmap", file);

    /// <summary>qemu-nbd -k SOCKET ARGS; returns once the socket accepts.</summary>
    public static async Task<QemuNbd> StartAsync(string socket, params string[] args)
    {
        var psi = new ProcessStartInfo(Tools.Require("qemu-nbd"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add("-k");
        psi.ArgumentList.Add(socket);
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        await SocketWait.ForListenerAsync(socket);
        return new QemuNbd(p, socket);
    }

    public async Task KillAsync()
    {
        if (!_process.HasExited)
            _process.Kill();
        await _process.WaitForExitAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        _process.Dispose();
    }
}
