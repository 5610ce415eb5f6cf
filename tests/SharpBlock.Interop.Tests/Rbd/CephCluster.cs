using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Rbd;

/// <summary>
/// One throwaway Ceph cluster (scripts/ceph-cluster.sh: a mon and a memstore OSD on 127.0.0.1) per test class.
/// A cluster that cannot start fails the tests that need it; it is stopped by PID when the class is done.
/// </summary>
public sealed class CephCluster : IAsyncLifetime
{
    private readonly TempDir _dir = new();

    public string Conf => Path.Combine(_dir.Path, "ceph.conf");

    /// <summary>An rbd filename for <paramref name="image"/> in pool rbd of this cluster.</summary>
    public string Name(string image) => $"rbd:rbd/{image}:conf={Conf}";

    public async Task InitializeAsync()
    {
        foreach (var tool in new[] { "ceph-mon", "ceph-osd", "ceph", "rbd" })
            Tools.Require(tool);
        (await Tools.RunAsync("bash", [Script, "start", _dir.Path], timeoutMs: 120_000)).Ok();
    }

    public async Task DisposeAsync()
    {
        await Tools.RunAsync("bash", [Script, "stop", _dir.Path], timeoutMs: 60_000);
        _dir.Dispose();
    }

    /// <summary>Adds a [global] setting to the configuration; clients that connect afterwards read it.</summary>
    public void Configure(string setting) => File.AppendAllText(Conf, setting + "\n");

    /// <summary>
    /// Kills the OSD (SIGKILL, as a crashed host would go): the connection a client holds to it breaks and no
    /// data operation can complete any more. The monitor stays, so the cluster still answers the client.
    /// </summary>
    public void KillOsd()
    {
        foreach (string pidFile in Directory.GetFiles(Path.Combine(_dir.Path, "run"), "osd.*.pid"))
        {
            using var osd = System.Diagnostics.Process.GetProcessById(int.Parse(File.ReadAllText(pidFile).Trim(), System.Globalization.CultureInfo.InvariantCulture));
            osd.Kill();
            osd.WaitForExit(10_000);
        }
    }

    /// <summary>Ceph's own rbd tool against this cluster.</summary>
    public Task<Tools.Result> RbdAsync(params string[] args) => Tools.RunAsync("rbd", ["-c", Conf, .. args], timeoutMs: 60_000);

    private static string Script
    {
        get
        {
            for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            {
                string p = Path.Combine(d.FullName, "scripts", "ceph-cluster.sh");
                if (File.Exists(p))
                    return p;
            }

            throw new FileNotFoundException("scripts/ceph-cluster.sh not found above the test directory");
        }
    }
}
