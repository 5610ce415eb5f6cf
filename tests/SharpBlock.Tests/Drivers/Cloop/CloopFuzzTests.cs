using SharpBlock.Drivers.Format.Cloop;
using SharpBlock.Errors;
using SharpBlock.Tests.Drivers.Vdi;

namespace SharpBlock.Tests.Drivers.Cloop;

/// <summary>
/// Mutates the header, offset table and the first compressed bytes of a generated image and drives it through
/// the cloop fuzz target. Anything but a BlockException is a bug, as is a hang (CLOOP_FUZZ_SEED=S
/// CLOOP_FUZZ_CASES=1 replays a case).
/// </summary>
[Collection(SharpBlock.Tests.Fuzz.FuzzCollection.Name)]
public class CloopFuzzTests
{
    [Fact]
    public async Task Mutated_images_never_crash_or_hang()
    {
        byte[] seed = CloopNodeTests.Build(CloopNodeTests.Disk(4096 * 6, 3), 4096);
        await FuzzCases.RunAsync("cloop", "CLOOP", seed, [(128, 8), (136, 56), (192, 64)], async img =>
        {
            try
            {
                await (await CloopNode.OpenAsync(CloopNodeTests.Memory(img), CloopNodeTests.ReadOnlySettings)).DisposeAsync();
                return true;
            }
            catch (BlockException)
            {
                return false;
            }
        });
    }
}
