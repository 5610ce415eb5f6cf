using System.Security.Cryptography;
using SharpBlock.Drivers;
using SharpBlock.Graph;
using SharpBlock.Interop.Tests.Vdi;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Formats;

/// <summary>
/// Golden images of one format that scripts/make-golden-images.sh writes into a folder of their own with a
/// manifest ("NAME SHA256" of what qemu-img reads from each): every image reads byte for byte as the manifest
/// says, and our img info, map and check print what qemu-img prints for it (exit codes included, so a format
/// without checks is refused alike).
/// </summary>
public abstract class GoldenManifestTests
{
    private readonly string _dir;
    private readonly string _format;
    private readonly IReadOnlyList<string> _expected;
    private readonly List<(string Name, string Sha256)> _manifest = [];

    /// <summary>The qcow2 golden fixture runs the one script; <paramref name="folder"/> is this format's part of it.</summary>
    protected GoldenManifestTests(Qcow2.GoldenImageTests.Images images, string folder, string format, IReadOnlyList<string> expected)
    {
        _dir = Path.Combine(images.Dir, folder);
        _format = format;
        _expected = expected;
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
        foreach (string n in _expected)
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
                var node = await graph.AddAsync(ImageFormats.ImageOptions(Path.Combine(_dir, name), _format, readOnly: true, "n0"));
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
            string[] args = named ? [command, "-f", _format, "--output=" + output, path] : [command, "--output=" + output, path];
            var theirs = await Tools.RunAsync("qemu-img", args);
            var ours = await Tools.RunAsync("sharpblock", ["img", .. args]);
            string? why;
            if (theirs.ExitCode != ours.ExitCode)
                why = $"exit {ours.ExitCode}, qemu-img exits {theirs.ExitCode}: {ours.Stderr}";
            else if (theirs.Stdout.Length == 0)
                why = Refusal(theirs.Stderr) == Refusal(ours.Stderr) ? null : $"{ours.Stderr}\nqemu-img:\n{theirs.Stderr}";
            else if (output == "json" && command != "map")
                why = ImageInteropChecks.Members(theirs.Stdout).SequenceEqual(ImageInteropChecks.Members(ours.Stdout)) ? null : $"{ours.Stdout}\nqemu-img:\n{theirs.Stdout}";
            else
                why = theirs.Stdout == ours.Stdout ? null : $"{ours.Stdout}\nqemu-img:\n{theirs.Stdout}";
            if (why != null)
                failures.Add($"{name} {string.Join(' ', args[..^1])}: {why}");
        }

        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    private static string Refusal(string stderr) =>
        stderr.Replace("qemu-img: ", "", StringComparison.Ordinal).Replace("sharpblock: ", "", StringComparison.Ordinal);
}
