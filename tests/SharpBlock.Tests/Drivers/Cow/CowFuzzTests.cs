using SharpBlock.Drivers.Format.Cow;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Tests.Drivers.Vdi;

namespace SharpBlock.Tests.Drivers.Cow;

/// <summary>
/// Mutates the header and bitmap of a generated image and drives it through the cow fuzz target; anything but
/// a BlockException is a bug, as is a hang. COW_FUZZ_SEED=S with COW_FUZZ_CASES=1 replays a printed case.
/// </summary>
[Collection(SharpBlock.Tests.Fuzz.FuzzCollection.Name)]
public class CowFuzzTests
{
    [Fact]
    public async Task Mutated_images_never_crash_or_hang()
    {
        byte[] seed = CowNodeTests.Generate(2 << 20, new Dictionary<long, byte> { [0] = 1, [5] = 2, [100] = 3 }, "base.img");
        // Magic and version, the end of the name, mtime, size and sector size, and the bitmap.
        await FuzzCases.RunAsync("cow", "COW", seed, [(0, 8), (1020, 28), (1048, 64)], async img =>
        {
            try
            {
                await (await CowNode.OpenAsync(CowNodeTests.Memory(img, true), NodeSettings.Default with { ReadOnly = true })).DisposeAsync();
                return true;
            }
            catch (BlockException)
            {
                return false;
            }
        });
    }
}
