using SharpBlock.Drivers.Format.Qcow;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Tests.Drivers.Vdi;

namespace SharpBlock.Tests.Drivers.Qcow;

/// <summary>
/// Mutates the header, L1 and L2 tables of a real image (with plain and compressed clusters) and drives it
/// through the qcow fuzz target. Anything but a BlockException is a bug, as is a hang; a failing case prints
/// QCOW_FUZZ_SEED=S (with QCOW_FUZZ_CASES=1 it replays).
/// </summary>
[Collection(SharpBlock.Tests.Fuzz.FuzzCollection.Name)]
public class QcowFuzzTests
{
    private static async Task<byte[]> SeedImageAsync()
    {
        var mem = QcowNodeTests.Memory(QcowNodeTests.NewImage(5 << 20));
        var node = await QcowNode.OpenAsync(mem, NodeSettings.Default);
        await using (node)
        {
            var rnd = new Random(1);
            byte[] d = new byte[6000];
            foreach (long at in (long[])[0, 3 << 20, (1 << 20) + 77])
            {
                rnd.NextBytes(d);
                await node.WriteAsync(at, d);
            }

            var c = (SharpBlock.Drivers.ICompressedWrites)node;
            byte[] text = new byte[4096];
            for (int i = 0; i < text.Length; i++)
                text[i] = (byte)('a' + (i % 23));
            byte[] packed = new byte[4096];
            int n = c.CompressCluster(text, packed);
            await c.WriteCompressedAsync(2 << 20, text, packed.AsMemory(0, n));
        }

        return mem.ToArray();
    }

    [Fact]
    public async Task Mutated_images_never_crash_or_hang()
    {
        byte[] seed = await SeedImageAsync();
        // Header, L1 table, and the first L2 table (right after the first data cluster).
        await FuzzCases.RunAsync("qcow", "QCOW", seed, [(0, 48), (48, 64), (4096, 4096 * 3)], async img =>
        {
            try
            {
                await (await QcowNode.OpenAsync(QcowNodeTests.Memory(img, true), NodeSettings.Default with { ReadOnly = true })).DisposeAsync();
                return true;
            }
            catch (BlockException)
            {
                return false;
            }
        });
    }
}
