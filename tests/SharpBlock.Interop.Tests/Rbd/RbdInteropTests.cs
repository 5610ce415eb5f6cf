using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Rbd;

/// <summary>
/// The rbd driver against a real Ceph cluster: what we write, Ceph's rbd export and qemu-img's rbd driver read
/// back byte for byte; what rbd import wrote, we read; errors name the pool and image and come back in time.
/// </summary>
public sealed class RbdInteropTests(CephCluster ceph) : IClassFixture<CephCluster>, IDisposable
{
    private readonly TempDir _tmp = new();

    public void Dispose() => _tmp.Dispose();

    /// <summary>8 MiB with data in the first and third 2 MiB, zeroes elsewhere (so block status has holes to find).</summary>
    private string SparseSource(int seed)
    {
        var bytes = new byte[8 << 20];
        var rng = new Random(seed);
        rng.NextBytes(bytes.AsSpan(0, 2 << 20));
        rng.NextBytes(bytes.AsSpan(4 << 20, 2 << 20));
        string p = _tmp.File($"src{seed}.raw");
        File.WriteAllBytes(p, bytes);
        return p;
    }

    [Fact]
    public async Task ConvertIntoRbd_RbdExportReadsTheSameBytes()
    {
        string src = SparseSource(1);
        (await Tools.RunAsync("sharpblock", "img", "convert", "-f", "raw", "-O", "raw", src, ceph.Name("into"))).Ok();
        string exported = _tmp.File("exported.raw");
        (await ceph.RbdAsync("export", "rbd/into", exported)).Ok();
        Assert.Equal(await File.ReadAllBytesAsync(src), await File.ReadAllBytesAsync(exported));
        // qemu-img's own rbd driver agrees on the contents.
        (await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "raw", src, ceph.Name("into"))).Ok();
    }

    [Fact]
    public async Task RbdImport_ReadThroughUs_SparseAndByteForByte()
    {
        string src = SparseSource(2);
        (await ceph.RbdAsync("import", src, "rbd/imported")).Ok();
        string back = _tmp.File("back.raw");
        (await Tools.RunAsync("sharpblock", "img", "convert", "-f", "raw", "-O", "raw", ceph.Name("imported"), back)).Ok();
        Assert.Equal(await File.ReadAllBytesAsync(src), await File.ReadAllBytesAsync(back));
        // Block status from diff_iterate2: 4 MiB objects, so data in [0,8M) as two objects, and object 1 a hole.
        var map = (await Tools.RunAsync("sharpblock", "img", "map", "--output=json", "-f", "raw", ceph.Name("imported"))).Ok().Stdout;
        Assert.Contains("\"start\": 0, \"length\": 8388608", map, StringComparison.Ordinal);
        var info = (await Tools.RunAsync("sharpblock", "img", "info", "-f", "raw", ceph.Name("imported"))).Ok().Stdout;
        Assert.Contains("virtual size: 8 MiB (8388608 bytes)", info, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CreateAndResize_RbdInfoAndQemuImgAgree()
    {
        (await Tools.RunAsync("sharpblock", "img", "create", "-f", "raw", ceph.Name("made"), "20M")).Ok();
        Assert.Contains("size 20 MiB", (await ceph.RbdAsync("info", "rbd/made")).Ok().Stdout, StringComparison.Ordinal);
        (await Tools.RunAsync("sharpblock", "img", "resize", "-f", "raw", ceph.Name("made"), "36M")).Ok();
        Assert.Contains("size 36 MiB", (await ceph.RbdAsync("info", "rbd/made")).Ok().Stdout, StringComparison.Ordinal);
        var q = (await Tools.RunAsync("qemu-img", "info", "-f", "raw", ceph.Name("made"))).Ok().Stdout;
        Assert.Contains("virtual size: 36 MiB (37748736 bytes)", q, StringComparison.Ordinal);
    }

    [Fact]
    public async Task QemuImgWrites_WeRead()
    {
        string src = SparseSource(3);
        (await Tools.RunAsync("qemu-img", "convert", "-f", "raw", "-O", "raw", src, ceph.Name("byqemu"))).Ok();
        (await Tools.RunAsync("sharpblock", "img", "compare", "-f", "raw", "-F", "raw", src, ceph.Name("byqemu"))).Ok();
    }

    [Fact]
    public async Task MissingImage_ErrorNamesPoolAndImage()
    {
        var r = await Tools.RunAsync("sharpblock", "img", "info", "-f", "raw", ceph.Name("nosuch"));
        string reason = r.OneLineError();
        Assert.Contains("'rbd/nosuch'", reason, StringComparison.Ordinal);
        Assert.Contains("No such file or directory", reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ClusterDown_ErrorInsteadOfHang()
    {
        // A monitor address nobody listens on: librados retries until the client's mount timeout, then we fail.
        string conf = _tmp.File("down.conf");
        string text = (await File.ReadAllTextAsync(ceph.Conf)).Replace("mon host = ", "mon host = v1:127.0.0.1:1 #", StringComparison.Ordinal);
        await File.WriteAllTextAsync(conf, text);
        var r = await Tools.RunAsync("sharpblock", ["img", "info", "-f", "raw", $"rbd:rbd/any:conf={conf}"], timeoutMs: 90_000);
        string reason = r.OneLineError();
        Assert.Contains("'rbd/any'", reason, StringComparison.Ordinal);
    }
}
