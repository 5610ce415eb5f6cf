using SharpBlock.Drivers.Format.Vpc;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Tests.Drivers.Vdi;

namespace SharpBlock.Tests.Drivers.Vpc;

/// <summary>
/// Mutates the footers, dynamic header and BAT of real images (dynamic and fixed) and drives them through the
/// vpc fuzz target. Anything but a BlockException is a bug, as is a hang. A failing case is printed
/// (VPC_FUZZ_SEED=S VPC_FUZZ_CASES=1 replays it) so it can become a named regression test.
/// </summary>
[Collection(SharpBlock.Tests.Fuzz.FuzzCollection.Name)]
public class VpcFuzzTests
{
    private static async Task<byte[]> SeedImageAsync(bool isFixed)
    {
        var mem = VpcNodeTests.Memory(await VpcNodeTests.NewImageAsync(new VpcCreateOptions(5 << 20, isFixed)));
        var node = await VpcNode.OpenAsync(mem, NodeSettings.Default);
        await using (node)
        {
            var rnd = new Random(2);
            byte[] d = new byte[6000];
            foreach (long at in (long[])[0, 3 << 20, (2 << 20) + 77])
            {
                rnd.NextBytes(d);
                await node.WriteAsync(at, d);
            }
        }

        return mem.ToArray();
    }

    private static async Task<bool> OpensAsync(byte[] img)
    {
        try
        {
            await (await VpcNode.OpenAsync(VpcNodeTests.Memory(img, true), NodeSettings.Default with { ReadOnly = true })).DisposeAsync();
            return true;
        }
        catch (BlockException)
        {
            return false;
        }
    }

    [Fact]
    public async Task Mutated_dynamic_images_never_crash_or_hang()
    {
        byte[] seed = await SeedImageAsync(isFixed: false);
        // The checksummed footer refuses most single-byte damage; the header and BAT are not checksummed.
        long tail = seed.Length - 512;
        await FuzzCases.RunAsync("vpc", "VPC", seed, [(0, 100), (512, 64), (512, 64), (1536, 16), (1536, 16), (tail, 100)], OpensAsync);
    }

    [Fact]
    public async Task Mutated_fixed_images_never_crash_or_hang()
    {
        byte[] seed = await SeedImageAsync(isFixed: true);
        long tail = seed.Length - 512;
        await FuzzCases.RunAsync("vpc", "VPC", seed, [(tail, 100), (0, 16)], OpensAsync);
    }
}
