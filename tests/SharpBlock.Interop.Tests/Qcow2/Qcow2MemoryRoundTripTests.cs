using SharpBlock.Drivers.Format.Qcow2;
using SharpBlock.Drivers.Protocol.Memory;
using SharpBlock.Drivers.Protocol.Null;
using SharpBlock.Graph;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Qcow2;

/// <summary>
/// qcow2 over the memory node: the real open and write paths with no file underneath, and the bytes they
/// leave judged by qemu-img; and the null node as the bottom of a graph that keeps nothing.
/// </summary>
public class Qcow2MemoryRoundTripTests
{
    [Fact]
    public async Task An_image_written_over_the_memory_node_is_one_qemu_img_accepts_and_reads_back()
    {
        using var dir = new TempDir();
        string made = dir.File("made.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", made, "8M")).Ok();
        byte[] image = await File.ReadAllBytesAsync(made);

        var memory = new MemoryNode(image, NodeSettings.Default, "memory.qcow2");
        byte[] written;
        await using (memory)
        {
            var q = await Qcow2Node.OpenAsync(memory, NodeSettings.Default);
            await using (q)
            {
                byte[] data = new byte[200_000];
                new Random(3).NextBytes(data);
                await q.WriteAsync(12345, data);
                await q.WriteZeroesAsync(4 << 20, 1 << 20);
                await q.FlushAsync();
                byte[] back = new byte[data.Length];
                await q.ReadAsync(12345, back);
                Assert.Equal(data, back);
            }

            written = memory.ToArray();
        }

        string result = dir.File("result.qcow2");
        await File.WriteAllBytesAsync(result, written);
        (await Tools.RunAsync("qemu-img", "check", result)).Ok();
        byte[] expect = new byte[200_000];
        new Random(3).NextBytes(expect);
        string pattern = dir.File("expect.bin");
        await File.WriteAllBytesAsync(pattern, expect);
        string raw = dir.File("result.raw");
        (await Tools.RunAsync("qemu-img", "convert", "-O", "raw", result, raw)).Ok();
        byte[] all = await File.ReadAllBytesAsync(raw);
        Assert.Equal(expect, all.AsSpan(12345, expect.Length).ToArray());
    }

    [Fact]
    public async Task The_null_node_takes_writes_keeps_nothing_and_reads_zeros()
    {
        await using var n = new NullNode(1 << 20, NodeSettings.Default);
        byte[] data = new byte[4096];
        Array.Fill(data, (byte)0x7e);
        await n.WriteAsync(8192, data);
        byte[] back = new byte[4096];
        Array.Fill(back, (byte)1);
        await n.ReadAsync(8192, back);
        Assert.True(Array.TrueForAll(back, b => b == 0));
        var st = await n.GetBlockStatusAsync(0, 1 << 20);
        Assert.True(st.IsZero);
        Assert.Equal(1 << 20, st.Length);
        await Assert.ThrowsAsync<SharpBlock.Errors.BlockException>(async () => await n.WriteAsync(1 << 20, data));
    }
}
