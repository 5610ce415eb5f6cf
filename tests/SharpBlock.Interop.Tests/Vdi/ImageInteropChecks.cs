using System.Text;
using System.Text.Json;
using SharpBlock.Drivers;
using SharpBlock.Graph;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Vdi;

/// <summary>
/// What the vdi and vpc interop tests both judge: our reading of an image against qemu-img convert's, our
/// info and map against qemu-img's, and the mixed disk that convert starts from.
/// </summary>
internal static class ImageInteropChecks
{
    /// <summary>A raw disk of whole MiBs cycling random bytes, text and zeros, so convert meets all three.</summary>
    public static async Task<byte[]> MixedRawAsync(string path, int mib, int seed)
    {
        var rnd = new Random(seed);
        byte[] disk = new byte[mib << 20];
        byte[] text = Encoding.ASCII.GetBytes("The quick brown fox jumps over the lazy dog. ");
        for (int m = 0; m < mib; m++)
        {
            var piece = disk.AsSpan(m << 20, 1 << 20);
            switch (m % 3)
            {
                case 0:
                    rnd.NextBytes(piece);
                    break;
                case 1:
                    for (int i = 0; i < piece.Length; i++)
                        piece[i] = text[i % text.Length];
                    break;
            }
        }

        await File.WriteAllBytesAsync(path, disk);
        return disk;
    }

    /// <summary>qemu-io -f FORMAT -c CMD... IMAGE.</summary>
    public static Task<Tools.Result> QemuIoAsync(string format, string img, params string[] cmds)
    {
        var args = new List<string> { "-f", format };
        foreach (var c in cmds)
        {
            args.Add("-c");
            args.Add(c);
        }

        args.Add(img);
        return Tools.RunAsync("qemu-io", args);
    }

    /// <summary>
    /// qemu-io writes 0x33 over 700 KiB at 5 MiB of our image, then we write 0x44 over <paramref name="ourLength"/>
    /// bytes at 1 MiB through the library; the raw model at <paramref name="raw"/> is updated to match, and
    /// qemu-img compare must agree with it.
    /// </summary>
    public static async Task AssertMixedWritesAgreeAsync(string format, string img, string raw, int ourLength)
    {
        (await QemuIoAsync(format, img, "write -P 0x33 5M 700k")).Ok();
        byte[] model = await File.ReadAllBytesAsync(raw);
        model.AsSpan(5 << 20, 700 << 10).Fill(0x33);
        var g = new BlockGraph();
        await using (g)
        {
            var node = await g.AddAsync(ImageFormats.ImageOptions(img, format, readOnly: false, "n0"));
            await node.WriteAsync(1 << 20, Enumerable.Repeat((byte)0x44, ourLength).ToArray());
        }

        model.AsSpan(1 << 20, ourLength).Fill(0x44);
        await File.WriteAllBytesAsync(raw, model);
        (await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", format, raw, img)).Ok();
    }

    private static string[] WithFormat(string? format, params string[] args)
    {
        if (format == null)
            return args;
        var list = new List<string> { args[0], "-f", format };
        list.AddRange(args[1..]);
        return [.. list];
    }

    /// <summary>We read the image byte for byte as qemu-img convert -O raw does, and map it as qemu-img map does.</summary>
    public static async Task AssertReadsLikeQemuAsync(TempDir dir, string img, string format)
    {
        string expect = dir.File("expect-" + Guid.NewGuid().ToString("N") + ".raw");
        (await Tools.RunAsync("qemu-img", "convert", "-f", format, "-O", "raw", img, expect)).Ok();
        byte[] want = await File.ReadAllBytesAsync(expect);
        File.Delete(expect);
        var g = new BlockGraph();
        await using (g)
        {
            var node = await g.AddAsync(ImageFormats.ImageOptions(img, format, readOnly: true, "n0"));
            Assert.Equal(want.Length, node.Length);
            byte[] got = new byte[want.Length];
            await node.ReadAsync(0, got);
            Assert.True(want.AsSpan().SequenceEqual(got), "content differs from qemu-img convert's");
        }

        var theirs = (await Tools.RunAsync("qemu-img", "map", "-f", format, "--output=json", img)).Ok();
        var ours = (await Tools.RunAsync("sharpblock", "img", "map", "-f", format, "--output=json", img)).Ok();
        Assert.Equal(theirs.Stdout, ours.Stdout);
        theirs = (await Tools.RunAsync("qemu-img", "map", "-f", format, img)).Ok();
        ours = (await Tools.RunAsync("sharpblock", "img", "map", "-f", format, img)).Ok();
        Assert.Equal(theirs.Stdout, ours.Stdout);
    }

    /// <summary>img info: the same json members with the same values (their order is the tool's), and the same human text.</summary>
    public static async Task AssertInfoLikeQemuAsync(string img, string? format)
    {
        var theirs = (await Tools.RunAsync("qemu-img", WithFormat(format, "info", "--output=json", img))).Ok();
        var ours = (await Tools.RunAsync("sharpblock", ["img", .. WithFormat(format, "info", "--output=json", img)])).Ok();
        Assert.Equal(Members(theirs.Stdout), Members(ours.Stdout));
        theirs = (await Tools.RunAsync("qemu-img", WithFormat(format, "info", img))).Ok();
        ours = (await Tools.RunAsync("sharpblock", ["img", .. WithFormat(format, "info", img)])).Ok();
        Assert.Equal(theirs.Stdout, ours.Stdout);
    }

    public static SortedDictionary<string, string> Members(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var d = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var p in doc.RootElement.EnumerateObject())
            d[p.Name] = p.Value.GetRawText();
        return d;
    }

    /// <summary>raw -> FORMAT -> qcow2 -> FORMAT -> raw, every step by our convert; the last raw equals the first.</summary>
    public static async Task AssertRoundTripAsync(TempDir dir, string format, params string[] options)
    {
        string raw = dir.File("rt-source.raw");
        byte[] disk = await MixedRawAsync(raw, 7, seed: 11);
        string a = dir.File("rt-a." + format), q = dir.File("rt.qcow2"), b = dir.File("rt-b." + format), back = dir.File("rt-back.raw");
        (await Tools.RunAsync("sharpblock", ["img", "convert", "-f", "raw", "-O", format, .. options, raw, a])).Ok();
        (await Tools.RunAsync("sharpblock", "img", "convert", "-f", format, "-O", "qcow2", a, q)).Ok();
        (await Tools.RunAsync("sharpblock", ["img", "convert", "-f", "qcow2", "-O", format, .. options, q, b])).Ok();
        (await Tools.RunAsync("sharpblock", "img", "convert", "-f", format, "-O", "raw", b, back)).Ok();
        byte[] got = await File.ReadAllBytesAsync(back);
        // A format may round the size up (vpc to a geometry); the added tail reads as zeros.
        Assert.True(got.Length >= disk.Length);
        Assert.True(disk.AsSpan().SequenceEqual(got.AsSpan(0, disk.Length)), "the round trip changed the content");
        Assert.DoesNotContain(got.AsSpan(disk.Length).ToArray(), x => x != 0);
    }
}
