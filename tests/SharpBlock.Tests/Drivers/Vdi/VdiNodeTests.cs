using System.Buffers.Binary;
using SharpBlock.Drivers;
using SharpBlock.Drivers.Format.Vdi;
using SharpBlock.Drivers.Protocol.Memory;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Io;

namespace SharpBlock.Tests.Drivers.Vdi;

/// <summary>VDI over the memory node: frozen layout, round trips, tables after data, and QEMU's refusals.</summary>
public class VdiNodeTests
{
    internal static async Task<byte[]> NewImageAsync(long size, bool isStatic)
    {
        var mem = new MemoryNode([], NodeSettings.Default, "new.vdi", 64L << 20);
        await using (mem)
        {
            await VdiCreator.CreateAsync(mem, size, isStatic);
            return mem.ToArray();
        }
    }

    internal static MemoryNode Memory(byte[] image, bool readOnly = false) =>
        new(image, NodeSettings.Default with { ReadOnly = readOnly }, "test.vdi", image.Length + (32L << 20));

    [Fact]
    public void Layout_constants_are_frozen()
    {
        Assert.Equal(0xbeda107fu, VdiLayout.Signature);
        Assert.Equal(0x40, VdiHeader.SignatureOffset);
        Assert.Equal(0x4c, VdiHeader.ImageTypeOffset);
        Assert.Equal(0x154, VdiHeader.BmapOffsetOffset);
        Assert.Equal(0x158, VdiHeader.DataOffsetOffset);
        Assert.Equal(0x168, VdiHeader.SectorSizeOffset);
        Assert.Equal(0x170, VdiHeader.DiskSizeOffset);
        Assert.Equal(0x178, VdiHeader.BlockSizeOffset);
        Assert.Equal(0x180, VdiHeader.BlocksInImageOffset);
        Assert.Equal(0x184, VdiHeader.BlocksAllocatedOffset);
        Assert.Equal(0x1a8, VdiHeader.UuidLinkOffset);
        Assert.Equal(0x1b8, VdiHeader.UuidParentOffset);
        Assert.Equal(0x1fffff8000000UL, VdiLayout.MaxDiskSize);
    }

    [Theory]
    [InlineData(10L << 20, false, 1024)]
    [InlineData(10L << 20, true, 1024 + (10L << 20))]
    [InlineData(1000, false, 1024)]
    [InlineData(0, false, 512)]
    public async Task New_images_have_qemus_layout(long size, bool isStatic, long fileLength)
    {
        byte[] img = await NewImageAsync(size, isStatic);
        Assert.Equal(fileLength, img.Length);
        var h = VdiHeader.Read(img);
        Assert.Equal(VdiLayout.Version11, h.Version);
        Assert.Equal(0x180u, h.HeaderSize);
        Assert.Equal(isStatic ? 2u : 1u, h.ImageType);
        Assert.Equal(512u, h.OffsetBmap);
        Assert.Equal((ulong)((size + 511) & ~511L), h.DiskSize);
        Assert.Equal(isStatic ? h.BlocksInImage : 0u, h.BlocksAllocated);
        Assert.True(h.LinkUuidIsNull && h.ParentUuidIsNull);
        Assert.Equal(100, new VdiFormat().Probe(img, "x"));
        Assert.Equal(0, new VdiFormat().Probe(img.AsSpan(0, 100), "x"));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Writes_read_back_after_reopen_and_check_clean(bool isStatic)
    {
        const int size = 6 << 20;
        var mem = Memory(await NewImageAsync(size, isStatic));
        var model = new byte[size];
        var rnd = new Random(3);
        var node = await VdiNode.OpenAsync(mem, NodeSettings.Default);
        for (int i = 0; i < 30; i++)
        {
            int off = rnd.Next(size - 1);
            int len = Math.Min(rnd.Next(1, 300_000), size - off);
            byte[] d = new byte[len];
            rnd.NextBytes(d);
            await node.WriteAsync(off, d);
            d.CopyTo(model, off);
        }

        // The last sector, and zeros over data.
        await node.WriteAsync(size - 512, Enumerable.Repeat((byte)0xEE, 512).ToArray());
        Array.Fill(model, (byte)0xEE, size - 512, 512);
        await node.WriteZeroesAsync(0, 4096);
        Array.Clear(model, 0, 4096);
        await node.DisposeAsync();

        var again = await VdiNode.OpenAsync(Memory(mem.ToArray(), readOnly: true), NodeSettings.Default with { ReadOnly = true });
        await using (again)
        {
            byte[] got = new byte[size];
            await again.ReadAsync(0, got);
            Assert.True(model.AsSpan().SequenceEqual(got));
            var r = await again.CheckAsync(ImageCheckMode.None, null);
            Assert.Equal(0, r.Corruptions);
        }
    }

    [Fact]
    public async Task Concurrent_writes_into_the_same_new_blocks_all_land()
    {
        var mem = Memory(await NewImageAsync(8 << 20, false));
        var node = await VdiNode.OpenAsync(mem, NodeSettings.Default);
        var model = new byte[node.Length];
        var tasks = new List<Task>();
        // 64 writes of 4 KiB spread over four blocks, all racing to allocate them.
        for (int i = 0; i < 64; i++)
        {
            long at = (i % 4 * (2L << 20)) + (i / 4 * 8192);
            byte[] d = Enumerable.Repeat((byte)(i + 1), 4096).ToArray();
            d.CopyTo(model, at);
            tasks.Add(node.WriteAsync(at, d).AsTask());
        }

        await Task.WhenAll(tasks);
        await node.DisposeAsync();
        await using var again = await VdiNode.OpenAsync(Memory(mem.ToArray(), true), NodeSettings.Default with { ReadOnly = true });
        byte[] got = new byte[model.Length];
        await again.ReadAsync(0, got);
        Assert.True(model.AsSpan().SequenceEqual(got));
        Assert.Equal(0, (await again.CheckAsync(ImageCheckMode.None, null)).Corruptions);
    }

    [Fact]
    public async Task The_map_reaches_the_file_only_at_flush_after_the_data()
    {
        var mem = Memory(await NewImageAsync(4 << 20, false));
        var node = await VdiNode.OpenAsync(mem, NodeSettings.Default);
        await using (node)
        {
            await node.WriteAsync(1 << 20, new byte[] { 1, 2, 3 });
            byte[] before = mem.ToArray();
            // The block is in the file, zero-padded to 1 MiB, but neither the map nor the count name it yet.
            Assert.Equal(1024 + (1 << 20), before.Length);
            Assert.Equal(VdiLayout.Unallocated, BinaryPrimitives.ReadUInt32LittleEndian(before.AsSpan(512 + 4)));
            Assert.Equal(0u, VdiHeader.Read(before).BlocksAllocated);
            await node.FlushAsync();
            byte[] after = mem.ToArray();
            Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(after.AsSpan(512 + 4)));
            Assert.Equal(1u, VdiHeader.Read(after).BlocksAllocated);
            var st = await node.GetBlockStatusAsync(0, 4 << 20);
            Assert.True(st.IsZero && !st.IsData && st.Length == 1 << 20);
            st = await node.GetBlockStatusAsync(1 << 20, 3 << 20);
            Assert.True(st.IsData && (st.Flags & BlockStatusFlags.OffsetValid) != 0 && st.Offset == 1024 && st.Length == 1 << 20);
        }
    }

    [Fact]
    public async Task Zeroing_allocates_nothing_and_zeroes_allocated_blocks_in_place()
    {
        var mem = Memory(await NewImageAsync(4 << 20, false));
        var node = await VdiNode.OpenAsync(mem, NodeSettings.Default);
        await using (node)
        {
            await node.WriteZeroesAsync(0, 2 << 20);
            await node.FlushAsync();
            Assert.Equal(1024, mem.Length);
            await node.WriteAsync(3 << 20, Enumerable.Repeat((byte)9, 1 << 20).ToArray());
            await node.WriteZeroesAsync((3 << 20) + 512, 1024);
            byte[] got = new byte[2048];
            await node.ReadAsync(3 << 20, got);
            Assert.Equal(9, got[0]);
            Assert.All(got[512..1536], b => Assert.Equal(0, b));
            Assert.Equal(9, got[1536]);
        }
    }

    [Fact]
    public async Task Discarded_entries_read_as_zeros()
    {
        byte[] img = await NewImageAsync(2 << 20, true);
        img.AsSpan(1024, 1 << 20).Fill(0x77);
        BinaryPrimitives.WriteUInt32LittleEndian(img.AsSpan(512), VdiLayout.Discarded);
        await using var node = await VdiNode.OpenAsync(Memory(img, true), NodeSettings.Default with { ReadOnly = true });
        byte[] got = new byte[4096];
        await node.ReadAsync(0, got);
        Assert.All(got, b => Assert.Equal(0, b));
    }

    private static async Task<string> RefusalAsync(byte[] img)
    {
        var ex = await Assert.ThrowsAnyAsync<BlockException>(async () => await VdiNode.OpenAsync(Memory(img, true), NodeSettings.Default with { ReadOnly = true }));
        return ex.Message;
    }

    private static byte[] Patched(byte[] img, int offset, uint value)
    {
        byte[] copy = (byte[])img.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(copy.AsSpan(offset), value);
        return copy;
    }

    [Fact]
    public async Task Headers_qemu_refuses_are_refused_with_its_words()
    {
        byte[] img = await NewImageAsync(4 << 20, false);
        Assert.Equal("Image not in VDI format (bad signature beda1070)", await RefusalAsync(Patched(img, VdiHeader.SignatureOffset, 0xbeda1070)));
        Assert.Equal("unsupported VDI image (version 1.2)", await RefusalAsync(Patched(img, VdiHeader.VersionOffset, 0x00010002)));
        Assert.Equal("unsupported VDI image (unaligned block map offset 0x201)", await RefusalAsync(Patched(img, VdiHeader.BmapOffsetOffset, 0x201)));
        Assert.Equal("unsupported VDI image (unaligned data offset 0x401)", await RefusalAsync(Patched(img, VdiHeader.DataOffsetOffset, 0x401)));
        Assert.Equal("unsupported VDI image (sector size 4096 is not 512)", await RefusalAsync(Patched(img, VdiHeader.SectorSizeOffset, 4096)));
        Assert.Equal("unsupported VDI image (block size 2097152 is not 1048576)", await RefusalAsync(Patched(img, VdiHeader.BlockSizeOffset, 2 << 20)));
        Assert.Equal("unsupported VDI image (disk size 4194304, image bitmap has room for 3145728)", await RefusalAsync(Patched(img, VdiHeader.BlocksInImageOffset, 3)));
        Assert.Equal("unsupported VDI image (non-NULL link UUID)", await RefusalAsync(Patched(img, VdiHeader.UuidLinkOffset + 4, 1)));
        Assert.Equal("unsupported VDI image (non-NULL parent UUID)", await RefusalAsync(Patched(img, VdiHeader.UuidParentOffset, 1)));
        var huge = Patched(img, VdiHeader.BlocksInImageOffset, 0x20000000);
        Assert.Equal("unsupported VDI image (too many blocks 536870912, max is 536870784)", await RefusalAsync(huge));
        byte[] big = (byte[])img.Clone();
        BinaryPrimitives.WriteUInt64LittleEndian(big.AsSpan(VdiHeader.DiskSizeOffset), 1UL << 62);
        Assert.Equal("Unsupported VDI image size (size is 0x4000000000000000, max supported is 0x1fffff8000000)", await RefusalAsync(big));
    }

    [Fact]
    public async Task A_block_map_beyond_the_file_is_refused_before_it_is_allocated()
    {
        byte[] img = await NewImageAsync(4 << 20, false);
        // A map of a million entries (4 MiB) in a file of 1 KiB: refused, not read as zeros.
        var h = Patched(img, VdiHeader.BlocksInImageOffset, 1_000_000);
        Assert.Contains("lies beyond the end of the file", await RefusalAsync(h), StringComparison.Ordinal);
        Assert.Contains("beyond the end of the file", await RefusalAsync(Patched(img, VdiHeader.BmapOffsetOffset, 0x7ffffe00)), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Entries_past_the_blocks_fail_the_request_and_check_counts_them()
    {
        byte[] img = await NewImageAsync(4 << 20, false);
        img = Patched(img, 512, 9);
        img = Patched(img, 516, 0);
        img = Patched(img, 520, 0);
        img = Patched(img, VdiHeader.BlocksAllocatedOffset, 1);
        await using var node = await VdiNode.OpenAsync(Memory(img, true), NodeSettings.Default with { ReadOnly = true });
        await Assert.ThrowsAsync<ImageCorruptException>(async () => await node.ReadAsync(0, new byte[512]));
        var lines = new List<string>();
        var r = await node.CheckAsync(ImageCheckMode.None, lines.Add);
        Assert.Equal(3, r.Corruptions);
        Assert.Equal(["ERROR: block index 0 too large, is 9", "ERROR: block index 0 also used by 0", "ERROR: allocated blocks mismatch, is 2, should be 1"], lines);
        await Assert.ThrowsAnyAsync<BlockException>(async () => await node.CheckAsync(ImageCheckMode.All, null));
    }

    [Fact]
    public async Task Creation_refuses_what_qemu_refuses()
    {
        var ex = Assert.Throws<BlockException>(() => VdiCreator.Validate(0x1fffff8000001));
        Assert.Equal("Unsupported VDI image size (size is 0x1fffff8000200, max supported is 0x1fffff8000000)", ex.Message);
        VdiCreator.Validate(0x1fffff8000000);
        await Task.CompletedTask;
    }
}
