using SharpBlock.Drivers.Format.Dmg;
using SharpBlock.Errors;
using SharpBlock.Tests.Drivers.Vdi;

namespace SharpBlock.Tests.Drivers.Dmg;

/// <summary>
/// Mutates the trailer, the resource fork's mish tables and the first chunks of a generated image and drives
/// it through the dmg fuzz target. Anything but a BlockException is a bug, as is a hang (DMG_FUZZ_SEED=S
/// DMG_FUZZ_CASES=1 replays a case).
/// </summary>
[Collection(SharpBlock.Tests.Fuzz.FuzzCollection.Name)]
public class DmgFuzzTests
{
    [Fact]
    public async Task Mutated_images_never_crash_or_hang()
    {
        byte[] seed = DmgImageBuilder.Build(DmgNodeTests.Disk(600, 5), DmgNodeTests.EveryType, resourceFork: true);
        long fork = (long)System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(seed.AsSpan(seed.Length - 512 + 0x28));
        await FuzzCases.RunAsync("dmg", "DMG", seed, [(seed.Length - 512, 512), (fork, 0x100 + 700), (0, 256)], async img =>
        {
            try
            {
                await (await DmgNode.OpenAsync(DmgNodeTests.Memory(img), DmgNodeTests.ReadOnlySettings)).DisposeAsync();
                return true;
            }
            catch (BlockException)
            {
                return false;
            }
        });
    }
}
