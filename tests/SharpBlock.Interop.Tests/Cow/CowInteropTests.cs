using SharpBlock.Interop.Tests.Vdi;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Cow;

/// <summary>cow (UML COW v2) through the CLI: QEMU 7.2 has no cow driver, so qemu-img judges the raw and qcow2 images we convert to.</summary>
public class CowInteropTests
{
    [Fact]
    public async Task Overlays_read_through_their_backing_file_and_round_trip()
    {
        using var dir = new TempDir();
        string raw = dir.File("base.raw");
        byte[] disk = await ImageInteropChecks.MixedRawAsync(raw, 4, seed: 9);
        string cow = dir.File("top.cow");
        var c = (await Tools.RunAsync("sharpblock", "img", "create", "-f", "cow", "-b", "base.raw", "-F", "raw", cow)).Ok();
        Assert.Contains("fmt=cow size=4194304 backing_file=base.raw backing_fmt=raw", c.Stdout, StringComparison.Ordinal);
        var info = (await Tools.RunAsync("sharpblock", "img", "info", "--output=json", cow)).Ok();
        Assert.Contains("\"format\": \"cow\"", info.Stdout, StringComparison.Ordinal);
        Assert.Contains("\"backing-filename\": \"base.raw\"", info.Stdout, StringComparison.Ordinal);

        // Our writes land in the overlay; the backing file is untouched, and the overlay reads as the model.
        var g = new SharpBlock.Graph.BlockGraph();
        await using (g)
        {
            var node = await g.AddAsync(SharpBlock.Drivers.ImageFormats.ImageOptions(cow, "cow", readOnly: false, "n0"));
            await node.WriteAsync(1000, Enumerable.Repeat((byte)0x44, 70000).ToArray());
        }

        Assert.Equal(disk, await File.ReadAllBytesAsync(raw));
        disk.AsSpan(1000, 70000).Fill(0x44);
        string model = dir.File("model.raw"), flat = dir.File("flat.raw");
        await File.WriteAllBytesAsync(model, disk);
        (await Tools.RunAsync("sharpblock", "img", "convert", "-O", "raw", cow, flat)).Ok();
        (await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "raw", model, flat)).Ok();

        await ImageInteropChecks.AssertRoundTripAsync(dir, "cow");
    }
}
