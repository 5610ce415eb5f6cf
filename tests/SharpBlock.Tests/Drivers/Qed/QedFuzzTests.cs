using SharpBlock.Drivers.Format.Qed;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Tests.Drivers.Vdi;

namespace SharpBlock.Tests.Drivers.Qed;

/// <summary>
/// Mutates the header, L1 and L2 tables of a real image and drives it through the qed fuzz target (open,
/// read everything, map, write, flush, check and repair, reopen). Anything but a BlockException is a bug, as
/// is a hang. A failing case is printed (QED_FUZZ_SEED=S QED_FUZZ_CASES=1 replays it).
/// </summary>
[Collection(SharpBlock.Tests.Fuzz.FuzzCollection.Name)]
public class QedFuzzTests
{
    private static async Task<byte[]> SeedImageAsync()
    {
        // Small clusters and tables keep the seed image (and each case) small.
        var mem = QedNodeTests.Memory(await QedNodeTests.NewImageAsync(3 << 20, clusterSize: 4096, tableSize: 2));
        var node = await QedNode.OpenAsync(mem, NodeSettings.Default);
        await using (node)
        {
            var rnd = new Random(1);
            byte[] d = new byte[6000];
            foreach (long at in (long[])[0, 2 << 20, (1 << 20) + 77])
            {
                rnd.NextBytes(d);
                await node.WriteAsync(at, d);
            }

            await node.WriteZeroesAsync(8192, 8192);
        }

        return mem.ToArray();
    }

    [Fact]
    public async Task Mutated_images_never_crash_or_hang()
    {
        byte[] seed = await SeedImageAsync();
        // Header, L1 table (clusters 1-2), and the first L2 table (after the first two data clusters).
        await FuzzCases.RunAsync("qed", "QED", seed, [(0, 64), (4096, 64), (4096 * 5, 8192)], async img =>
        {
            try
            {
                await (await QedNode.OpenAsync(QedNodeTests.Memory(img, true), NodeSettings.Default with { ReadOnly = true })).DisposeAsync();
                return true;
            }
            catch (BlockException)
            {
                return false;
            }
        });
    }
}
