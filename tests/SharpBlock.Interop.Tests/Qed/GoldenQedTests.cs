using System.Security.Cryptography;
using SharpBlock.Drivers;
using SharpBlock.Graph;
using SharpBlock.Interop.Tests.Vdi;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Qed;

/// <summary>
/// The qed golden images of scripts/make-golden-images.sh (made by qemu-img and qemu-io: cluster and table
/// sizes, empty, zero clusters, backing chains onto qed and raw) with their manifest of content checksums: we
/// read each byte for byte as qemu-img does, and our img info, map and check say what qemu-img says.
/// </summary>
public sealed class GoldenQedTests : IClassFixture<Qcow2.GoldenImageTests.Images>
{
    private readonly string _dir;
    private readonly List<(string Name, string Sha256)> _manifest = [];

    /// <summary>The qcow2 golden fixture runs the one script; its qed block writes qed/manifest.txt.</summary>
    public GoldenQedTests(Qcow2.GoldenImageTests.Images images)
    {
        _dir = Path.Combine(images.Dir, "qed");
        foreach (string line in File.ReadAllLines(Path.Combine(_dir, "manifest.txt")))
        {
            var p = line.Split(' ');
            _manifest.Add((p[0], p[1]));
        }
    }

    [Fact]
    public void The_script_makes_every_kind_of_image()
    {
        var names = _manifest.Select(m => m.Name).ToHashSet();
        foreach (string n in (string[])["default.qed", "small.qed", "big-tables.qed", "empty.qed", "chain-base.qed", "chain-top.qed", "raw-top.qed"])
            Assert.Contains(n, names);
    }

    [Fact]
    public async Task Every_image_reads_byte_for_byte_as_the_manifest_says()
    {
        var failures = new List<string>();
        foreach (var (name, sha) in _manifest)
        {
            var graph = new BlockGraph();
            await using (graph)
            {
                var node = await graph.AddAsync(ImageFormats.ImageOptions(Path.Combine(_dir, name), "qed", readOnly: true, "n0"));
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
        }

        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Theory]
    [InlineData("info", "json", true)]
    [InlineData("info", "human", true)]
    [InlineData("info", "json", false)]
    [InlineData("map", "json", true)]
    [InlineData("map", "human", false)]
    [InlineData("check", "json", true)]
    [InlineData("check", "human", false)]
    public async Task Output_matches_qemu_img_on_every_image(string command, string output, bool named)
    {
        var failures = new List<string>();
        foreach (var (name, _) in _manifest)
        {
            string path = Path.Combine(_dir, name);
            string[] args = named ? [command, "-f", "qed", "--output=" + output, path] : [command, "--output=" + output, path];
            var theirs = await Tools.RunAsync("qemu-img", args);
            var ours = await Tools.RunAsync("sharpblock", ["img", .. args]);
            string? why;
            if (theirs.ExitCode != ours.ExitCode)
                why = $"exit {ours.ExitCode}, qemu-img exits {theirs.ExitCode}: {ours.Stderr}";
            else if (output == "json" && command != "map")
                why = ImageInteropChecks.Members(theirs.Stdout).SequenceEqual(ImageInteropChecks.Members(ours.Stdout)) ? null : $"{ours.Stdout}\nqemu-img:\n{theirs.Stdout}";
            else
                why = theirs.Stdout == ours.Stdout ? null : $"{ours.Stdout}\nqemu-img:\n{theirs.Stdout}";
            if (why != null)
                failures.Add($"{name} {string.Join(' ', args[..^1])}: {why}");
        }

        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }
}
