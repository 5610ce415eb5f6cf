using System.Security.Cryptography;
using SharpBlock.Drivers;
using SharpBlock.Graph;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Vmdk;

/// <summary>
/// The vmdk golden images: the vmdk block of scripts/make-golden-images.sh makes them with the real qemu-img and
/// qemu-io (every subformat, zeroed grains, option values, a stream, a backing chain) and a manifest of content
/// checksums in OUTDIR/vmdk. We must read each one byte for byte, and our img info (json and human), map and
/// check must say what qemu-img says about it.
/// </summary>
public sealed class VmdkGoldenImageTests : IClassFixture<Qcow2.GoldenImageTests.Images>
{
    private readonly string _dir;

    /// <summary>The script run once for the class (the qcow2 golden tests' fixture); the vmdk block writes into its vmdk/ folder.</summary>
    public VmdkGoldenImageTests(Qcow2.GoldenImageTests.Images images)
    {
        _dir = Path.Combine(images.Dir, "vmdk");
        foreach (string line in File.ReadAllLines(Path.Combine(_dir, "manifest.txt")))
        {
            var parts = line.Split(' ');
            Manifest.Add((parts[0], parts[1]));
        }
    }

    private List<(string Name, string Sha256)> Manifest { get; } = [];

    [Fact]
    public void The_script_makes_every_kind_of_image()
    {
        var names = Manifest.Select(m => m.Name).ToHashSet();
        foreach (string n in new[] { "monolithicSparse.vmdk", "monolithicFlat.vmdk", "twoGbMaxExtentSparse.vmdk", "twoGbMaxExtentFlat.vmdk",
            "zeroed.vmdk", "options.vmdk", "streamOptimized.vmdk", "chain-base.vmdk", "chain-top.vmdk" })
            Assert.Contains(n, names);
    }

    [Fact]
    public async Task Every_image_is_probed_and_reads_byte_for_byte_as_the_manifest_says()
    {
        var failures = new List<string>();
        foreach (var (name, sha) in Manifest)
        {
            string path = Path.Combine(_dir, name);
            await using var graph = new BlockGraph();
            var node = await graph.AddAsync(ImageFormats.ImageOptions(path, await ImageFormats.ProbeNameAsync(path), readOnly: true, "g0"));
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            byte[] buf = new byte[1 << 20];
            for (long off = 0; off < node.Length; off += buf.Length)
            {
                int n = (int)Math.Min(buf.Length, node.Length - off);
                await node.ReadAsync(off, buf.AsMemory(0, n));
                hash.AppendData(buf, 0, n);
            }

            string got = Convert.ToHexStringLower(hash.GetHashAndReset());
            if (node.DriverName != "vmdk" || got != sha)
                failures.Add($"{name}: {node.DriverName} {got}, manifest {sha}");
        }

        Assert.Empty(failures);
    }

    [Fact]
    public async Task Info_map_and_check_say_what_qemu_img_says()
    {
        var failures = new List<string>();
        foreach (var (name, _) in Manifest)
        {
            string path = Path.Combine(_dir, name);
            foreach (string[] cmd in new[]
            {
                new[] { "info", "--output=json" }, ["info"], ["info", "--backing-chain", "--output=json"], ["map", "--output=json"], ["map"],
                ["check", "--output=json"], ["check"],
            })
            {
                var q = await Tools.RunAsync("qemu-img", [.. cmd, path]);
                var o = await Tools.RunAsync("sharpblock", ["img", .. cmd, path]);
                bool json = cmd.Contains("--output=json");
                string want = json ? VmdkChainAndInfoTests.Canonical(q.Stdout) : q.Stdout;
                string got = json && o.ExitCode == 0 ? VmdkChainAndInfoTests.Canonical(o.Stdout) : o.Stdout;
                if (q.ExitCode != o.ExitCode || want != got)
                    failures.Add($"{name} {string.Join(' ', cmd)}: qemu-img exit {q.ExitCode}\n{want}\nours exit {o.ExitCode}\n{got}{o.Stderr}");
            }
        }

        Assert.Empty(failures);
    }
}
