using System.Security.Cryptography;
using System.Text.Json;
using SharpBlock.Graph;
using SharpBlock.Schema;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Qcow2;

/// <summary>
/// The golden images: scripts/make-golden-images.sh makes them with the real qemu-img and qemu-io (every
/// version, cluster size and refcount width we claim, compressed and zero clusters, a backing chain,
/// internal snapshots, discards, a dirty lazy-refcounts image) and a manifest of content checksums. We must
/// read each one byte for byte as qemu-img does, and our `img info/check/map --output=json` must say what
/// qemu-img says about it.
/// </summary>
public sealed class GoldenImageTests : IClassFixture<GoldenImageTests.Images>
{
    private readonly Images _images;

    public GoldenImageTests(Images images) => _images = images;

    /// <summary>Runs the script once for the class into a temp dir.</summary>
    public sealed class Images : IAsyncLifetime, IDisposable
    {
        private readonly TempDir _dir = new();

        public string Dir => _dir.Path;

        public List<(string Name, string Sha256)> Manifest { get; } = [];

        public async Task InitializeAsync()
        {
            var r = await Tools.RunAsync("bash", [Path.Combine(RepoRoot(), "scripts", "make-golden-images.sh"), _dir.Path], timeoutMs: 300_000);
            r.Ok();
            foreach (string line in File.ReadAllLines(Path.Combine(_dir.Path, "manifest.txt")))
            {
                var parts = line.Split(' ');
                Manifest.Add((parts[0], parts[1]));
            }
        }

        public Task DisposeAsync() => Task.CompletedTask;

        public void Dispose() => _dir.Dispose();

        private static string RepoRoot()
        {
            for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            {
                if (File.Exists(Path.Combine(d.FullName, "scripts", "make-golden-images.sh")))
                    return d.FullName;
            }

            throw new DirectoryNotFoundException("scripts/make-golden-images.sh not found above " + AppContext.BaseDirectory);
        }
    }

    [Fact]
    public void The_script_makes_every_kind_of_image()
    {
        var names = _images.Manifest.Select(m => m.Name).ToHashSet();
        foreach (string n in new[] { "v2-64k.qcow2", "v2-512.qcow2", "v3-64k.qcow2", "v3-512.qcow2", "v3-2M.qcow2", "rc1.qcow2", "rc64.qcow2",
            "compressed.qcow2", "zero.qcow2", "chain-top.qcow2", "snapshot.qcow2", "discard.qcow2", "discard-top.qcow2", "lazy-dirty.qcow2" })
            Assert.Contains(n, names);
    }

    [Fact]
    public async Task Every_image_reads_byte_for_byte_as_the_manifest_says()
    {
        var failures = new List<string>();
        await using var graph = new BlockGraph();
        foreach (var (name, sha) in _images.Manifest)
        {
            var node = await graph.OpenImageAsync(Path.Combine(_images.Dir, name), BlockdevDriver.Qcow2, readOnly: true);
            try
            {
                using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                byte[] buf = new byte[1 << 20];
                for (long off = 0; off < node.Length; off += buf.Length)
                {
                    int n = (int)Math.Min(buf.Length, node.Length - off);
                    await node.ReadAsync(off, buf.AsMemory(0, n));
                    hash.AppendData(buf, 0, n);
                }

                string got = Convert.ToHexStringLower(hash.GetHashAndReset());
                if (got != sha)
                    failures.Add($"{name}: read {got}, qemu-img reads {sha}");
            }
            finally
            {
                await graph.CloseUnusedAsync(node);
            }
        }

        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Theory]
    [InlineData("info", "json")]
    [InlineData("check", "json")]
    [InlineData("map", "json")]
    [InlineData("info", "human")]
    [InlineData("check", "human")]
    [InlineData("map", "human")]
    public async Task Output_matches_qemu_img_on_every_image(string command, string format)
    {
        var failures = new List<string>();
        using var gate = new SemaphoreSlim(2);
        var tasks = _images.Manifest.Select(async m =>
        {
            await gate.WaitAsync();
            try
            {
                string path = Path.Combine(_images.Dir, m.Name);
                var theirs = await Tools.RunAsync("qemu-img", command, "--output=" + format, path);
                var ours = await Tools.RunAsync("sharpblock", "img", command, "--output=" + format, path);
                string? why = theirs.ExitCode != ours.ExitCode
                    ? $"exit {ours.ExitCode}, qemu-img exits {theirs.ExitCode}: {ours.Stderr}"
                    : format == "json"
                        ? Difference(JsonDocument.Parse(theirs.Stdout).RootElement, JsonDocument.Parse(ours.Stdout).RootElement, "")
                        : HumanDifference(theirs, ours);
                if (why != null)
                {
                    lock (failures)
                        failures.Add($"{m.Name} {command}: {why}");
                }
            }
            finally
            {
                gate.Release();
            }
        });
        await Task.WhenAll(tasks);
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    /// <summary>
    /// Every golden image goes through our `amend -o compat=0.10` and `resize --shrink` next to qemu-img
    /// doing the same to a copy: the same verdict, an image qemu-img check accepts, and the same content.
    /// </summary>
    [Theory]
    [InlineData("amend", "-o", "compat=0.10")]
    [InlineData("resize", "--shrink", "1M")]
    public async Task Downgrade_and_shrink_agree_with_qemu_img_on_every_image(string command, string option, string value)
    {
        var failures = new List<string>();
        using var work = new TempDir();
        using var gate = new SemaphoreSlim(2);
        // Backing names are relative to the image: the base goes next to the copies of its overlays.
        File.Copy(Path.Combine(_images.Dir, "chain-base.qcow2"), work.File("chain-base.qcow2"));
        var tasks = _images.Manifest.Where(m => !m.Name.StartsWith("chain-base", StringComparison.Ordinal)).Select(async m =>
        {
            await gate.WaitAsync();
            try
            {
                string ours = work.File("ours-" + m.Name), theirs = work.File("theirs-" + m.Name);
                File.Copy(Path.Combine(_images.Dir, m.Name), ours);
                File.Copy(Path.Combine(_images.Dir, m.Name), theirs);
                string[] args = command == "amend" ? [command, option, value, "FILE"] : [command, option, "FILE", value];
                var q = await Tools.RunAsync("qemu-img", args.Select(a => a == "FILE" ? theirs : a));
                var o = await Tools.RunAsync("sharpblock", new[] { "img" }.Concat(args.Select(a => a == "FILE" ? ours : a)));
                string? why = null;
                if (q.ExitCode != o.ExitCode)
                {
                    why = $"exit {o.ExitCode} ({o.Stderr.Trim()}), qemu-img exits {q.ExitCode} ({q.Stderr.Trim()})";
                }
                else if (q.ExitCode != 0)
                {
                    // Refused by both: with the same words (qemu-img may print a repair log first).
                    string qLast = q.Stderr.Trim().Split('\n')[^1].Replace("qemu-img: ", "", StringComparison.Ordinal);
                    string oLast = o.Stderr.Trim().Split('\n')[^1].Replace("sharpblock: ", "", StringComparison.Ordinal);
                    if (qLast != oLast)
                        why = $"refused with '{oLast}', qemu-img says '{qLast}'";
                }
                else
                {
                    var check = await Tools.RunAsync("qemu-img", "check", ours);
                    var compare = await Tools.RunAsync("qemu-img", "compare", theirs, ours);
                    if (check.ExitCode != 0)
                        why = "qemu-img check: " + check.Stdout + check.Stderr;
                    else if (compare.ExitCode != 0)
                        why = "content differs from qemu-img's result: " + compare.Stdout;
                }

                if (why != null)
                {
                    lock (failures)
                        failures.Add($"{m.Name}: {why}");
                }
            }
            finally
            {
                gate.Release();
            }
        });
        await Task.WhenAll(tasks);
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    /// <summary>The human output is compared line for line; messages only differ in the program name.</summary>
    private static string? HumanDifference(Tools.Result theirs, Tools.Result ours)
    {
        if (theirs.Stdout != ours.Stdout)
            return $"stdout differs:\n--- qemu-img\n{theirs.Stdout}\n--- ours\n{ours.Stdout}";
        string te = theirs.Stderr.Replace("qemu-img: ", "", StringComparison.Ordinal);
        string oe = ours.Stderr.Replace("sharpblock: ", "", StringComparison.Ordinal);
        return te == oe ? null : $"stderr differs:\n--- qemu-img\n{te}\n--- ours\n{oe}";
    }

    /// <summary>
    /// Where ours differs from qemu-img's JSON, or null. Key order is free (qemu-img's is a hash order).
    /// Format-specific data carries every member qemu-img 7.2 prints (scripts parse them); inside snapshot
    /// entries only the members we report are compared (the seed's SnapshotInfo has no icount).
    /// </summary>
    private static string? Difference(JsonElement theirs, JsonElement ours, string path)
    {
        bool subset = path.StartsWith(".snapshots[", StringComparison.Ordinal);
        if (theirs.ValueKind != ours.ValueKind)
            return $"{path}: {ours.ValueKind}, qemu-img has {theirs.ValueKind}";
        switch (theirs.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var p in theirs.EnumerateObject())
                {
                    if (!ours.TryGetProperty(p.Name, out var o))
                    {
                        if (subset)
                            continue;
                        return $"{path}.{p.Name} missing (qemu-img: {p.Value.GetRawText()})";
                    }

                    string? d = Difference(p.Value, o, $"{path}.{p.Name}");
                    if (d != null)
                        return d;
                }

                foreach (var p in ours.EnumerateObject())
                {
                    if (!theirs.TryGetProperty(p.Name, out _))
                        return $"{path}.{p.Name} = {p.Value.GetRawText()} is not in qemu-img's output";
                }

                return null;
            case JsonValueKind.Array:
                {
                    int n = theirs.GetArrayLength();
                    if (n != ours.GetArrayLength())
                        return $"{path}: {ours.GetArrayLength()} elements, qemu-img has {n}";
                    for (int i = 0; i < n; i++)
                    {
                        string? d = Difference(theirs[i], ours[i], $"{path}[{i}]");
                        if (d != null)
                            return d;
                    }

                    return null;
                }

            default:
                return theirs.GetRawText() == ours.GetRawText() ? null : $"{path}: {ours.GetRawText()}, qemu-img has {theirs.GetRawText()}";
        }
    }
}
