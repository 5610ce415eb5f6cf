using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Vmdk;

/// <summary>A hand-written descriptor mixing flat extents at offsets, a sparse extent file and lines QEMU passes over.</summary>
public class VmdkMultiExtentTests
{
    private const string Descriptor = """
        # Disk DescriptorFile
        version=1
        CID=abcdef01
        parentCID=ffffffff
        createType="twoGbMaxExtentSparse"

        # Extent description
        RW 2048 FLAT "flat1.bin" 2048
        RW 4096 SPARSE "sp-s001.vmdk"
        RDONLY 100 FLAT "flat1.bin" 0
        NOACCESS 100 FLAT "flat1.bin" 0
        RW 1024 FLAT "flat2.bin" 0

        # The Disk Data Base
        #DDB
        ddb.adapterType = "ide"

        """;

    [Fact]
    public async Task Qemu_writes_across_every_extent_and_we_read_and_write_what_it_does()
    {
        using var dir = new TempDir();
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "raw", dir.File("flat1.bin"), "3M")).Ok();
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "raw", dir.File("flat2.bin"), "1M")).Ok();
        // The sparse extent's own header (2 MiB) decides its size, not the line's 4096 sectors, as in QEMU.
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "vmdk", "-o", "subformat=twoGbMaxExtentSparse", dir.File("sp.vmdk"), "2M")).Ok();
        string img = dir.File("mix.vmdk");
        await File.WriteAllTextAsync(img, Descriptor.Replace("\r", "", StringComparison.Ordinal));
        (await Tools.RunAsync("qemu-io", "-f", "vmdk", "-c", "write -P 0x41 0 1M", "-c", "write -P 0x42 1000k 100k", "-c", "write -P 0x43 3M 100k",
            "-c", "write -P 0x44 3583k 1k", img)).Ok();
        string q = dir.File("q.raw"), o = dir.File("o.raw");
        (await Tools.RunAsync("qemu-img", "convert", "-O", "raw", img, q)).Ok();
        (await Tools.RunAsync("sharpblock", "img", "convert", "-O", "raw", img, o)).Ok();
        byte[] want = await File.ReadAllBytesAsync(q);
        Assert.Equal(3584 << 10, want.Length);
        Assert.Equal(want, await File.ReadAllBytesAsync(o));
        Assert.Equal((await Tools.RunAsync("qemu-img", "info", img)).Ok().Stdout, (await Tools.RunAsync("sharpblock", "img", "info", img)).Ok().Stdout);

        // Our writes across the extent borders land where qemu reads them.
        byte[] data = new byte[300 << 10];
        new Random(8).NextBytes(data);
        string patch = dir.File("patch.raw");
        await File.WriteAllBytesAsync(patch, data);
        await using (var g = new SharpBlock.Graph.BlockGraph())
        {
            var node = await g.AddAsync(SharpBlock.Drivers.ImageFormats.ImageOptions(img, "vmdk", readOnly: false, "n0"));
            await node.WriteAsync((1 << 20) - (100 << 10), data);
            await node.WriteAsync((3 << 20) - (100 << 10), data);
        }

        data.CopyTo(want, (1 << 20) - (100 << 10));
        data.CopyTo(want, (3 << 20) - (100 << 10));
        (await Tools.RunAsync("qemu-img", "check", img)).Ok();
        string model = dir.File("model.raw");
        await File.WriteAllBytesAsync(model, want);
        (await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "vmdk", model, img)).Ok();
    }
}
