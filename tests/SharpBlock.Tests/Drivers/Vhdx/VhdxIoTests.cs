using SharpBlock.Drivers;
using SharpBlock.Drivers.Format.Vhdx;

namespace SharpBlock.Tests.Drivers.Vhdx;

/// <summary>Round trips over the memory node: what is written reads back, across reopen, in every subformat.</summary>
public class VhdxIoTests
{
    [Theory]
    [InlineData(false, true, 1 << 20)]
    [InlineData(false, false, 2 << 20)]
    [InlineData(true, true, 1 << 20)]
    [InlineData(true, false, 1 << 20)]
    public async Task Random_writes_and_zeroes_read_back_across_reopen(bool isFixed, bool zero, int blockSize)
    {
        const int size = (9 << 20) + 512;
        byte[] image = await VhdxTestImage.CreateAsync(size, blockSize, isFixed, zero);
        var model = new byte[size];
        var rnd = new Random(blockSize + (isFixed ? 1 : 0) + (zero ? 2 : 0));
        var file = VhdxTestImage.File(image);
        await using (file)
        {
            var node = await VhdxTestImage.OpenAsync(file);
            await using (node)
            {
                Assert.Equal(size, node.Length);
                Assert.Equal(blockSize, node.ClusterSize);
                Assert.Equal(isFixed, node.LeaveBlocksAllocated);
                for (int i = 0; i < 30; i++)
                {
                    int off = rnd.Next(size);
                    int len = Math.Min(rnd.Next(1, 1_500_000), size - off);
                    if (i % 4 == 3)
                    {
                        await node.WriteZeroesAsync(off, len);
                        Array.Clear(model, off, len);
                        continue;
                    }

                    byte[] d = new byte[len];
                    rnd.NextBytes(d);
                    await node.WriteAsync(off, d);
                    d.CopyTo(model, off);
                }

                Assert.Equal(model, await ReadAllAsync(node));
                var check = await node.CheckAsync(ImageCheckMode.None, null);
                Assert.Equal(0, check.Corruptions);
            }

            // The headers moved on (sequence numbers, a new file write GUID) and the log was emptied each time.
            var again = await VhdxTestImage.OpenAsync(VhdxTestImage.File(file.ToArray(), readOnly: true), readOnly: true);
            await using (again)
            {
                Assert.Equal(Guid.Empty, again.CurrentHeader.LogGuid);
                Assert.False(again.LogReplayedOnOpen);
                Assert.Equal(model, await ReadAllAsync(again));
            }
        }
    }

    [Fact]
    public async Task A_read_write_open_updates_both_headers_and_the_first_write_changes_the_data_write_guid()
    {
        byte[] image = await VhdxTestImage.CreateAsync(4 << 20);
        VhdxHeader before;
        await using (var ro = await VhdxTestImage.OpenAsync(VhdxTestImage.File(image, true), true))
            before = ro.CurrentHeader;
        var file = VhdxTestImage.File(image);
        var node = await VhdxTestImage.OpenAsync(file);
        var opened = node.CurrentHeader;
        Assert.Equal(before.SequenceNumber + 2, opened.SequenceNumber);
        Assert.NotEqual(before.FileWriteGuid, opened.FileWriteGuid);
        Assert.Equal(before.DataWriteGuid, opened.DataWriteGuid);
        await node.WriteAsync(0, new byte[] { 1 });
        Assert.NotEqual(before.DataWriteGuid, node.CurrentHeader.DataWriteGuid);
        Assert.Equal(opened.FileWriteGuid, node.CurrentHeader.FileWriteGuid);
        await node.DisposeAsync();
        byte[] after = file.ToArray();
        Assert.True(VhdxHeader.TryRead(after.AsSpan((int)VhdxLayout.Header1Offset), out var h1));
        Assert.True(VhdxHeader.TryRead(after.AsSpan((int)VhdxLayout.Header2Offset), out var h2));
        Assert.Equal(1UL, h1.SequenceNumber > h2.SequenceNumber ? h1.SequenceNumber - h2.SequenceNumber : h2.SequenceNumber - h1.SequenceNumber);
        Assert.Equal(h1.DataWriteGuid, h2.DataWriteGuid);
    }

    [Fact]
    public async Task Zero_writes_never_allocate_and_allocation_goes_to_the_end_of_the_file()
    {
        byte[] image = await VhdxTestImage.CreateAsync(8 << 20);
        var file = VhdxTestImage.File(image);
        await using var node = await VhdxTestImage.OpenAsync(file);
        long length = file.Length;
        await node.WriteZeroesAsync(0, 8 << 20);
        Assert.Equal(length, file.Length);
        await node.WriteAsync(3 << 20, new byte[] { 9 });
        Assert.Equal(length + (1 << 20), file.Length);
        Assert.Equal(VhdxBlockState.FullyPresent, node.BatEntry(3).State);
        Assert.Equal(length, node.BatEntry(3).FileOffset);
        Assert.Equal(VhdxBlockState.Zero, node.BatEntry(2).State);
        await node.WriteZeroesAsync(3 << 20, 1);
        Assert.Equal(new byte[1], await ReadAsync(node, 3 << 20, 1));
    }

    /// <summary>Hyper-V writes 4 KiB logical sectors (qemu-img cannot): the chunk ratio and the size rounding follow them.</summary>
    [Fact]
    public async Task Images_with_4k_logical_sectors_read_and_write()
    {
        byte[] image = await VhdxTestImage.CreateAsync(8 << 20);
        long md = System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(image.AsSpan((int)VhdxLayout.RegionTable1Offset + VhdxRegionTable.EntriesOffset + VhdxRegionEntry.Size + VhdxRegionEntry.FileOffsetOffset));
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(image.AsSpan((int)md + VhdxLayout.MetadataTableSize + 32), 4096);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(image.AsSpan((int)md + VhdxLayout.MetadataTableSize + 36), 4096);
        var file = VhdxTestImage.File(image);
        await using var node = await VhdxTestImage.OpenAsync(file);
        Assert.Equal(4096, node.LogicalSectorSize);
        Assert.Equal(4096, node.PhysicalSectorSize);
        Assert.Equal(VhdxLayout.SectorsPerBitmapBlock * 4096 / (1 << 20), node.ChunkRatio);
        byte[] d = Enumerable.Range(0, 10_000).Select(i => (byte)i).ToArray();
        await node.WriteAsync((1 << 20) - 5000, d);
        Assert.Equal(d, await ReadAsync(node, (1 << 20) - 5000, d.Length));
    }

    [Fact]
    public async Task Parallel_overwrites_of_present_blocks_and_allocations_all_land()
    {
        byte[] image = await VhdxTestImage.CreateAsync(16 << 20);
        await using var node = await VhdxTestImage.OpenAsync(VhdxTestImage.File(image));
        var model = new byte[16 << 20];
        await node.WriteAsync(0, new byte[8 << 20]);
        var tasks = new List<Task>();
        for (int i = 0; i < 64; i++)
        {
            int off = (i * 250_000) % ((16 << 20) - 4096);
            byte[] d = Enumerable.Repeat((byte)(i + 1), 4096).ToArray();
            d.CopyTo(model, off);
            tasks.Add(node.WriteAsync(off, d).AsTask());
        }

        await Task.WhenAll(tasks);
        Assert.Equal(model, await ReadAllAsync(node));
    }

    internal static async Task<byte[]> ReadAllAsync(SharpBlock.Graph.BlockNode node) => await ReadAsync(node, 0, (int)node.Length);

    internal static async Task<byte[]> ReadAsync(SharpBlock.Graph.BlockNode node, long offset, int length)
    {
        byte[] b = new byte[length];
        await node.ReadAsync(offset, b);
        return b;
    }
}
