using System.Security.Cryptography;
using SharpBlock.Graph;
using SharpBlock.Schema;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Vhdx;

/// <summary>
/// The golden vhdx images of scripts/make-golden-images.sh (its vhdx block): we read each byte for byte as
/// qemu-img does (the manifest's checksums), and `img info/check/map` in json and human form print what
/// qemu-img prints for it.
/// </summary>
public sealed class VhdxGoldenImageTests : IClassFixture<VhdxGoldenImageTests.Images>
{
    private readonly Images _images;

    public VhdxGoldenImageTests(Images images) => _images = images;

    public sealed class Images : IAsyncLifetime, IDisposable
    {
        private readonly TempDir _dir = new();

        public string Dir => _dir.Path;

        public List<(string Name, string Sha256)> Manifest { get; } = [];

        public async Task InitializeAsync()
        {
            string script = "";
            for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null && script.Length == 0; d = d.Parent)
            {
                string p = Path.Combine(d.FullName, "scripts", "make-golden-images.sh");
                if (File.Exists(p))
                    script = p;
            }

            Assert.NotEmpty(script);
            (await Tools.RunAsync("bash", [script, _dir.Path], timeoutMs: 300_000)).Ok();
            foreach (string line in File.ReadAllLines(Path.Combine(_dir.Path, "vhdx-manifest.txt")))
            {
                var parts = line.Split(' ');
                Manifest.Add((parts[0], parts[1]));
            }
        }

        public Task DisposeAsync() => Task.CompletedTask;

        public void Dispose() => _dir.Dispose();
    }

    [Fact]
    public void The_script_makes_every_kind_of_image()
    {
        var names = _images.Manifest.Select(m => m.Name).ToHashSet();
        foreach (string n in new[] { "dynamic.vhdx", "dynamic-1M.vhdx", "dynamic-not-present.vhdx", "fixed.vhdx", "fixed-1M.vhdx", "empty.vhdx" })
            Assert.Contains(n, names);
    }

    [Fact]
    public async Task Every_image_reads_byte_for_byte_as_the_manifest_says()
    {
        var failures = new List<string>();
        await using var graph = new BlockGraph();
        foreach (var (name, sha) in _images.Manifest)
        {
            var node = await graph.OpenImageAsync(Path.Combine(_images.Dir, name), BlockdevDriver.Vhdx, readOnly: true);
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
        foreach (var (name, _) in _images.Manifest)
        {
            string path = Path.Combine(_images.Dir, name);
            var theirs = await Tools.RunAsync("qemu-img", command, "--output=" + format, path);
            var ours = await Tools.RunAsync("sharpblock", "img", command, "--output=" + format, path);
            string? why = theirs.ExitCode != ours.ExitCode ? $"exit {ours.ExitCode}, qemu-img exits {theirs.ExitCode}: {ours.Stderr}"
                : format == "json" && theirs.ExitCode == 0 ? (VhdxInteropTests.Canonical(theirs.Stdout) == VhdxInteropTests.Canonical(ours.Stdout) ? null : $"qemu-img:\n{theirs.Stdout}\nours:\n{ours.Stdout}")
                : theirs.Stdout != ours.Stdout ? $"qemu-img:\n{theirs.Stdout}\nours:\n{ours.Stdout}"
                : theirs.Stderr.Replace("qemu-img: ", "", StringComparison.Ordinal) != ours.Stderr.Replace("sharpblock: ", "", StringComparison.Ordinal) ? $"stderr: {theirs.Stderr} / {ours.Stderr}"
                : null;
            if (why != null)
                failures.Add($"{name} {command} {format}: {why}");
        }

        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }
}
