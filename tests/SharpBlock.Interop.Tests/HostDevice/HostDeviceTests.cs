using SharpBlock.Drivers.Protocol.File;
using SharpBlock.Graph;
using SharpBlock.Io;
using SharpBlock.Schema;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.HostDevice;

/// <summary>
/// host_device on loop devices the test attaches as root, with 512-byte and 4096-byte logical blocks: what
/// the device reports (judged by blockdev(8)), O_DIRECT requests that are not block-aligned, discard and
/// write-zeroes by the device's commands (judged against qemu-io doing the same on a twin device), and the
/// refusals of QEMU 7.2 for a driver on the wrong kind of file (judged against qemu-img's words).
/// </summary>
public class HostDeviceTests
{
    private const int MiB = 1 << 20;

    internal static BlockdevOptions Options(BlockdevDriver driver, string path, bool direct = false, bool readOnly = false)
    {
        var file = new BlockdevOptionsFile { Filename = path };
        var o = driver switch
        {
            BlockdevDriver.HostCdrom => new BlockdevOptions { Driver = driver, HostCdrom = file },
            BlockdevDriver.HostFloppy => new BlockdevOptions { Driver = driver, HostFloppy = file },
            _ => new BlockdevOptions { Driver = driver, HostDevice = file },
        };
        o.NodeName = "dev0";
        o.ReadOnly = readOnly;
        o.Discard = BlockdevDiscardOptions.Unmap;
        o.Cache = new BlockdevCacheOptions { Direct = direct };
        return o;
    }

    [Theory]
    [InlineData(512)]
    [InlineData(4096)]
    public async Task Size_and_block_sizes_come_from_the_device(int sector)
    {
        using var dir = new TempDir();
        await using var loop = await LoopDevice.AttachAsync(dir.PatternFile("dev.img", 8 * MiB, seed: 3), sector);
        await using var graph = new BlockGraph();
        var node = Assert.IsType<FileNode>(await graph.AddAsync(Options(BlockdevDriver.HostDevice, loop.Path, direct: true)));

        Assert.Equal("host_device", node.DriverName);
        Assert.Equal(await loop.BlockdevAsync("--getsize64"), node.Length);
        Assert.Equal(sector, await loop.BlockdevAsync("--getss"));
        Assert.Equal(sector, node.LogicalBlockSize);
        Assert.Equal(await loop.BlockdevAsync("--getpbsz"), node.PhysicalBlockSize);
        Assert.Equal(sector, node.RequestAlignment);
    }

    [Theory]
    [InlineData(512)]
    [InlineData(4096)]
    public async Task Unaligned_direct_requests_are_done_in_whole_device_blocks(int sector)
    {
        using var dir = new TempDir();
        string backing = dir.PatternFile("dev.img", 4 * MiB, seed: 5);
        byte[] expected = File.ReadAllBytes(backing);
        await using var loop = await LoopDevice.AttachAsync(backing, sector);
        await using (var graph = new BlockGraph())
        {
            var node = await graph.AddAsync(Options(BlockdevDriver.HostDevice, loop.Path, direct: true));
            // Disjoint writes, two of them into the same device block at once: the read-modify-write of one must
            // not undo the other.
            (long Offset, int Length)[] writes = [(100, 50), (200, 60), (1000, 5000), (MiB - 1, 2), ((2 * MiB) + 3, MiB + 100)];
            var tasks = new List<Task>();
            foreach (var (offset, length) in writes)
            {
                byte[] data = new byte[length];
                new Random((int)offset).NextBytes(data);
                data.CopyTo(expected, offset);
                tasks.Add(node.WriteAsync(offset, data).AsTask());
            }

            await Task.WhenAll(tasks);
            foreach (var (offset, length) in writes)
            {
                byte[] got = new byte[length + 7];
                await node.ReadAsync(offset - 3, got);
                Assert.Equal(expected.AsSpan((int)offset - 3, got.Length).ToArray(), got);
            }

            byte[] all = new byte[expected.Length];
            await node.ReadAsync(0, all);
            Assert.Equal(expected, all);
            await node.FlushAsync();
        }

        await loop.DisposeAsync();
        Assert.Equal(expected, File.ReadAllBytes(backing));
    }

    [Theory]
    [InlineData(512, false)]
    [InlineData(4096, false)]
    [InlineData(4096, true)]
    public async Task Discard_and_write_zeroes_leave_zeroes_as_qemu_io_leaves_them(int sector, bool direct)
    {
        using var dir = new TempDir();
        await using var ours = await LoopDevice.AttachAsync(dir.PatternFile("ours.img", 4 * MiB, seed: 7), sector);
        await using var theirs = await LoopDevice.AttachAsync(dir.PatternFile("theirs.img", 4 * MiB, seed: 7), sector);
        (long Offset, int Length)[] zeroed = [(4096, 64 << 10), (MiB, 256 << 10), (100, 10000), (2 * MiB, 512 << 10)];
        await using (var graph = new BlockGraph())
        {
            var node = await graph.AddAsync(Options(BlockdevDriver.HostDevice, ours.Path, direct));
            await node.WriteZeroesAsync(4096, 64 << 10);
            await node.WriteZeroesAsync(MiB, 256 << 10, RequestFlags.MayUnmap);
            await node.WriteZeroesAsync(100, 10000);
            await node.DiscardAsync(2 * MiB, 512 << 10);
            foreach (var (offset, length) in zeroed)
            {
                byte[] got = new byte[length];
                await node.ReadAsync(offset, got);
                Assert.True(!got.AsSpan().ContainsAnyExcept((byte)0), $"{length} bytes at {offset} are not zero");
            }

            await node.FlushAsync();
        }

        (await Tools.RunAsync(
            "qemu-io", "--image-opts", $"driver=host_device,filename={theirs.Path},discard=unmap,cache.direct={(direct ? "on" : "off")}",
            "-c", "write -z 4096 64k", "-c", "write -z -u 1M 256k", "-c", "write -z 100 10000", "-c", "discard 2M 512k")).Ok();
        var verdict = await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "raw", ours.Path, theirs.Path);
        Assert.Equal("Images are identical.\n", verdict.Ok().Stdout);

        // The device's commands reached the loop driver as they did from QEMU: the files under the devices
        // have the same holes, not only the same bytes.
        await ours.DisposeAsync();
        await theirs.DisposeAsync();
        string oursMap = (await Tools.RunAsync("qemu-img", "map", "--output=json", "-f", "raw", ours.Backing)).Ok().Stdout;
        string theirsMap = (await Tools.RunAsync("qemu-img", "map", "--output=json", "-f", "raw", theirs.Backing)).Ok().Stdout;
        Assert.Equal(theirsMap, oursMap);
        Assert.Contains("\"zero\": true", oursMap, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Img_converts_onto_a_4k_device_with_cache_none_and_reports_it_as_qemu_img()
    {
        using var dir = new TempDir();
        string source = dir.PatternFile("src.raw", 4 * MiB, seed: 9);
        await using var loop = await LoopDevice.AttachAsync(dir.PatternFile("dev.img", 4 * MiB, seed: 10), 4096);

        (await Tools.RunAsync("sharpblock", "img", "convert", "-n", "-t", "none", "-f", "raw", "-O", "raw", source, loop.Path)).Ok();
        Assert.Equal("Images are identical.\n", (await Tools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "raw", source, loop.Path)).Ok().Stdout);
        Assert.Equal("Images are identical.\n", (await Tools.RunAsync("sharpblock", "img", "compare", "-f", "raw", "-F", "raw", loop.Path, source)).Ok().Stdout);
        foreach (var args in new[] { new[] { "info", "-f", "raw", loop.Path }, ["info", "-f", "host_device", loop.Path], ["info", "--output=json", loop.Path] })
        {
            string qemu = (await Tools.RunAsync("qemu-img", args)).Ok().Stdout;
            string ours = (await Tools.RunAsync("sharpblock", ["img", .. args])).Ok().Stdout;
            Assert.Equal(Canonical(qemu, json: args.Contains("--output=json")), Canonical(ours, json: args.Contains("--output=json")));
        }
    }

    // qemu-img's JSON members come in a hash order; the text form is compared as it is.
    private static string Canonical(string output, bool json)
    {
        if (!json)
            return output;
        using var doc = System.Text.Json.JsonDocument.Parse(output);
        return QmpCanonical.Of(doc.RootElement);
    }

    [Fact]
    public async Task A_driver_on_the_wrong_kind_of_file_is_refused_in_qemu_words()
    {
        using var dir = new TempDir();
        string regular = dir.PatternFile("regular.img", MiB);
        await using var loop = await LoopDevice.AttachAsync(dir.PatternFile("dev.img", MiB, seed: 2));
        foreach (string opts in new[] { $"driver=file,filename={loop.Path}", $"driver=host_device,filename={regular}", $"driver=host_cdrom,filename={regular}" })
        {
            var qemu = await Tools.RunAsync("qemu-img", "info", "--image-opts", opts);
            Assert.NotEqual(0, qemu.ExitCode);
            string reason = (await Tools.RunAsync("sharpblock", "img", "info", "--image-opts", opts)).OneLineError();
            Assert.Equal(qemu.Stderr.Trim()["qemu-img: ".Length..].Replace($"'{opts}'", $"'{(opts.Contains("host_") ? regular : loop.Path)}'", StringComparison.Ordinal), reason);
        }
    }
}
