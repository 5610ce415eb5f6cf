using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Curl;

/// <summary>
/// A real web, FTP or TFTP server (Debian's nginx, vsftpd, tftpd-hpa) serving one directory on a free loopback
/// port, configured by a file in the test's temp dir and run in the foreground as a child process: no system
/// service or system config is touched. Disposing (or <see cref="Kill"/>) ends it.
/// </summary>
internal sealed class LoopbackServer : IDisposable
{
    private readonly Process _process;

    private LoopbackServer(Process process, string url)
    {
        _process = process;
        Url = url;
    }

    /// <summary>The URL of the served directory, ending in '/'.</summary>
    public string Url { get; }

    /// <summary>
    /// nginx over <paramref name="root"/>; with a certificate pair it speaks https. ranges: false sends no
    /// Accept-Ranges; a rate (nginx's limit_rate, "256k") makes one transfer last long enough to break it.
    /// </summary>
    public static async Task<LoopbackServer> NginxAsync(TempDir dir, string root, (string Cert, string Key)? tls = null, bool ranges = true, string? rate = null)
    {
        int port = FreeTcpPort();
        string work = Directory.CreateDirectory(dir.File("nginx-" + port)).FullName;
        string listen = tls is { } t
            ? $"listen 127.0.0.1:{port} ssl; ssl_certificate {t.Cert}; ssl_certificate_key {t.Key};"
            : $"listen 127.0.0.1:{port};";
        File.WriteAllText(Path.Combine(work, "nginx.conf"), $$"""
            daemon off;
            master_process off;
            worker_processes 1;
            pid {{work}}/nginx.pid;
            error_log {{work}}/error.log;
            events { worker_connections 64; }
            http {
              access_log off;
              client_body_temp_path {{work}}; proxy_temp_path {{work}}; fastcgi_temp_path {{work}};
              uwsgi_temp_path {{work}}; scgi_temp_path {{work}};
              server { {{listen}} root {{root}}; {{(ranges ? "" : "max_ranges 0;")}} {{(rate != null ? "limit_rate " + rate + ";" : "")}} }
            }
            """);
        var p = Start(Sbin("nginx"), "-c", Path.Combine(work, "nginx.conf"), "-p", work, "-e", Path.Combine(work, "error.log"));
        await TcpReadyAsync(p, port);
        return new LoopbackServer(p, $"{(tls != null ? "https" : "http")}://127.0.0.1:{port}/") { Port = port };
    }

    /// <summary>The TCP port the server listens on.</summary>
    public int Port { get; private init; }

    /// <summary>
    /// Whether a client connection to the server is established now (from /proc/net/tcp): a transfer the
    /// test started is under way, not yet begun or already over.
    /// </summary>
    public bool HasClient()
    {
        string local = ":" + Port.ToString("X4", System.Globalization.CultureInfo.InvariantCulture);
        foreach (string line in File.ReadLines("/proc/net/tcp").Skip(1))
        {
            string[] f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length > 3 && f[1].EndsWith(local, StringComparison.Ordinal) && f[3] == "01")
                return true;
        }

        return false;
    }

    /// <summary>vsftpd with anonymous read-only access to <paramref name="root"/>; with a certificate pair, implicit FTPS.</summary>
    public static async Task<LoopbackServer> VsftpdAsync(TempDir dir, string root, (string Cert, string Key)? tls = null)
    {
        int port = FreeTcpPort();
        string work = Directory.CreateDirectory(dir.File("vsftpd-" + port)).FullName;
        string conf = $"""
            listen=YES
            listen_address=127.0.0.1
            listen_port={port}
            background=NO
            run_as_launching_user=YES
            anonymous_enable=YES
            no_anon_password=YES
            anon_root={root}
            local_enable=NO
            write_enable=NO
            pasv_enable=YES
            pasv_address=127.0.0.1
            secure_chroot_dir={work}
            xferlog_enable=NO
            seccomp_sandbox=NO

            """;
        if (tls is { } t)
        {
            conf += $"""
                ssl_enable=YES
                implicit_ssl=YES
                allow_anon_ssl=YES
                force_anon_data_ssl=YES
                force_anon_logins_ssl=YES
                require_ssl_reuse=NO
                rsa_cert_file={t.Cert}
                rsa_private_key_file={t.Key}

                """;
        }

        string path = Path.Combine(work, "vsftpd.conf");
        File.WriteAllText(path, conf);
        var p = Start(Sbin("vsftpd"), path);
        await TcpReadyAsync(p, port);
        return new LoopbackServer(p, $"{(tls != null ? "ftps" : "ftp")}://127.0.0.1:{port}/");
    }

    /// <summary>tftpd-hpa serving <paramref name="root"/> (read-only, in the foreground).</summary>
    public static async Task<LoopbackServer> TftpdAsync(string root)
    {
        int port = FreeUdpPort();
        var p = Start(Sbin("in.tftpd"), "-L", "-a", $"127.0.0.1:{port}", "-s", root, "-u", Environment.UserName);
        await UdpReadyAsync(p, port);
        return new LoopbackServer(p, $"tftp://127.0.0.1:{port}/");
    }

    /// <summary>A self-signed certificate for 127.0.0.1, made now with openssl.</summary>
    public static async Task<(string Cert, string Key)> SelfSignedAsync(TempDir dir)
    {
        string cert = dir.File("cert.pem"), key = dir.File("key.pem");
        (await Tools.RunAsync("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
            "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1")).Ok();
        return (cert, key);
    }

    /// <summary>Ends the server at once, as a crash would; transfers in flight break.</summary>
    public void Kill()
    {
        if (!_process.HasExited)
            _process.Kill(entireProcessTree: true);
        _process.WaitForExit();
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }

    /// <summary>Daemons live in sbin, which a non-root PATH may lack; Tools.Require fails (never skips) when absent.</summary>
    private static string Sbin(string tool)
    {
        foreach (var dir in new[] { "/usr/sbin", "/sbin" })
        {
            string p = Path.Combine(dir, tool);
            if (File.Exists(p))
                return p;
        }

        return Tools.Require(tool);
    }

    private static Process Start(string program, params string[] args)
    {
        var psi = new ProcessStartInfo(program) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        p.OutputDataReceived += static (_, _) => { };
        p.ErrorDataReceived += static (_, _) => { };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    private static int FreeTcpPort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    private static int FreeUdpPort()
    {
        using var u = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)u.Client.LocalEndPoint!).Port;
    }

    private static async Task TcpReadyAsync(Process p, int port)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            if (p.HasExited)
                throw new InvalidOperationException($"{p.StartInfo.FileName} exited with {p.ExitCode} before it listened");
            using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await s.ConnectAsync(IPAddress.Loopback, port);
                return;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(20);
            }
        }
    }

    /// <summary>Waits until the TFTP server answers a read request (for a name that does not exist: any reply will do).</summary>
    private static async Task UdpReadyAsync(Process p, int port)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        byte[] rrq = [0, 1, .. "no-such-file"u8, 0, .. "octet"u8, 0];
        using var u = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        while (true)
        {
            if (p.HasExited)
                throw new InvalidOperationException($"in.tftpd exited with {p.ExitCode} before it listened");
            await u.SendAsync(rrq, new IPEndPoint(IPAddress.Loopback, port));
            using var cts = new CancellationTokenSource(200);
            try
            {
                await u.ReceiveAsync(cts.Token);
                return;
            }
            catch (Exception ex) when ((ex is OperationCanceledException or SocketException) && DateTime.UtcNow < deadline)
            {
            }
        }
    }
}
