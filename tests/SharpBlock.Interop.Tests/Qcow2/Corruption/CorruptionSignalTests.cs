using System.Text.Json;
using SharpBlock.Errors;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Qcow2.Corruption;

/// <summary>What a client sees when a write meets damage: the event, the error, a node that stays readable.</summary>
public class CorruptionSignalTests
{
    private static string Qcow2Device(string path, string extra = "") =>
        $"{{\"driver\": \"qcow2\", \"id\": \"d0\"{extra}, \"file\": {{\"driver\": \"file\", \"filename\": {JsonSerializer.Serialize(path)}}}}}";

    [Fact]
    public async Task A_write_onto_the_L1_table_raises_BLOCK_IMAGE_CORRUPTED_fails_with_EIO_and_leaves_the_node_readable()
    {
        using var dir = new TempDir();
        var img = await DamagedImage.CreateAsync(dir.File("t.qcow2"));
        img.Poke64(img.L2Offset, (1UL << 63) | (ulong)img.L1Offset);
        await using (var h = await QmpHarness.StartAsync())
        {
            await h.Client.ReturnAsync("blockdev-add", Qcow2Device(img.Path));
            var dev = h.Device("d0");
            var ex = await Assert.ThrowsAsync<BlockException>(async () => await dev.Root!.WriteAsync(0, new byte[512]));
            Assert.Equal(Errno.EIO, ex.Errno);
            Assert.Contains("Preventing invalid write on metadata (overlaps with active L1 table)", ex.Message, StringComparison.Ordinal);

            var ev = (await h.Client.WaitEventAsync("BLOCK_IMAGE_CORRUPTED")).GetProperty("data");
            Assert.Equal("d0", ev.GetProperty("device").GetString());
            Assert.Equal(dev.Root!.NodeName, ev.GetProperty("node-name").GetString());
            Assert.Equal("Preventing invalid write on metadata (overlaps with active L1 table)", ev.GetProperty("msg").GetString());
            Assert.Equal(img.L1Offset, ev.GetProperty("offset").GetInt64());
            Assert.Equal(512, ev.GetProperty("size").GetInt64());
            Assert.True(ev.GetProperty("fatal").GetBoolean());

            // Reads go on (the data QEMU would make unreachable), every later write is refused.
            byte[] b = new byte[65536];
            await dev.Root.ReadAsync(1 << 20, b);
            Assert.True(Array.TrueForAll(b, x => x == 0x22));
            var again = await Assert.ThrowsAsync<BlockException>(async () => await dev.Root.WriteAsync(8 << 20, new byte[512]));
            Assert.Equal(Errno.EIO, again.Errno);
        }

        var info = (await Tools.RunAsync("qemu-img", "info", "--output=json", img.Path)).Ok().Stdout;
        Assert.Contains("\"corrupt\": true", info, StringComparison.Ordinal);
        Assert.True(img.HostBytesAre(img.Data0, 0x11));
        var open = await Tools.RunAsync("qemu-io", "-c", "read 0 512", img.Path);
        Assert.Contains("Image is corrupt; cannot be opened read/write", open.Stdout + open.Stderr, StringComparison.Ordinal);
    }

    /// <summary>
    /// Damage that once made the allocator spin forever under the metadata lock (a refcount block that would
    /// describe itself on top of the header): every such image must fail the write quickly.
    /// </summary>
    [Theory]
    [InlineData("refcount table entry is zero")]
    [InlineData("refcount of the header is zero")]
    [InlineData("refcount of the refcount block is zero")]
    [InlineData("refcount of the refcount table is zero")]
    [InlineData("refcount table entry points at the L1 table")]
    [InlineData("refcount table lies past the end of the file")]
    public async Task An_allocation_on_damaged_refcounts_fails_fast(string variant)
    {
        using var dir = new TempDir();
        var img = await DamagedImage.CreateAsync(dir.File("t.qcow2"));
        DamageVariants.All.Single(v => v.Name == variant).Patch(img);
        await using var h = await QmpHarness.StartAsync();
        await h.Client.ReturnAsync("blockdev-add", Qcow2Device(img.Path));
        var root = h.Device("d0").Root!;
        var write = root.WriteAsync(40 << 20, new byte[65536]).AsTask();
        Assert.Same(write, await Task.WhenAny(write, Task.Delay(10_000)));
        var ex = await Assert.ThrowsAsync<BlockException>(() => write);
        Assert.Equal(Errno.EIO, ex.Errno);
        Assert.True(img.HostBytesAre(img.Data1M, 0x22));
    }

    [Fact]
    public async Task Overlap_check_none_lets_the_write_through_as_qemu_does_and_constant_skips_L2_tables()
    {
        using var dir = new TempDir();
        var img = await DamagedImage.CreateAsync(dir.File("t.qcow2"));
        // Guest cluster 16 (1 MiB) maps onto the L2 table itself: only a check of L2 tables sees it.
        img.Poke64(img.L2Offset + (16 * 8), (1UL << 63) | (ulong)img.L2Offset);
        string copy = dir.File("copy.qcow2");
        File.Copy(img.Path, copy);

        await using (var h = await QmpHarness.StartAsync())
        {
            await h.Client.ReturnAsync("blockdev-add", Qcow2Device(img.Path, ", \"overlap-check\": {\"template\": \"constant\"}"));
            await h.Device("d0").Root!.WriteAsync((1 << 20) + 4096, new byte[512]);
        }

        await using (var h = await QmpHarness.StartAsync())
        {
            await h.Client.ReturnAsync("blockdev-add", Qcow2Device(copy, ", \"overlap-check\": \"cached\""));
            await Assert.ThrowsAsync<BlockException>(async () => await h.Device("d0").Root!.WriteAsync((1 << 20) + 4096, new byte[512]));
        }

        await using (var h = await QmpHarness.StartAsync())
        {
            var (cls, desc) = await h.Client.ErrorAsync("blockdev-add", Qcow2Device(copy, ", \"overlap-check\": \"sometimes\""));
            Assert.Equal("GenericError", cls);
            Assert.Contains("overlap-check", desc, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_backing_file_name_with_a_NUL_is_an_error_naming_the_field()
    {
        using var dir = new TempDir();
        string baseImg = dir.File("base.qcow2");
        string top = dir.File("top.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", baseImg, "1M")).Ok();
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", "-b", baseImg, "-F", "qcow2", top)).Ok();
        byte[] h = File.ReadAllBytes(top);
        long nameAt = (long)System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(h.AsSpan(8));
        using (var fs = new FileStream(top, FileMode.Open, FileAccess.Write))
        {
            fs.Position = nameAt + 2;
            fs.WriteByte(0);
        }

        var r = await Tools.RunAsync("sharpblock", "img", "info", top);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("backing_file_offset", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("NUL", r.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_size_that_is_not_whole_sectors_is_rounded_down_as_qemu_rounds_it()
    {
        using var dir = new TempDir();
        string p = dir.File("odd.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", p, "1M")).Ok();
        using (var fs = new FileStream(p, FileMode.Open, FileAccess.Write))
        {
            fs.Position = 24;
            fs.Write([0, 0, 0, 0, 0, 0x0f, 0xff, 0xff]);
        }

        string Size(string json) => JsonDocument.Parse(json).RootElement.GetProperty("virtual-size").GetRawText();
        string qemu = (await Tools.RunAsync("qemu-img", "info", "--output=json", p)).Ok().Stdout;
        string ours = (await Tools.RunAsync("sharpblock", "img", "info", "--output=json", p)).Ok().Stdout;
        Assert.Equal(Size(qemu), Size(ours));
        Assert.Equal("1048064", Size(ours));
    }
}
