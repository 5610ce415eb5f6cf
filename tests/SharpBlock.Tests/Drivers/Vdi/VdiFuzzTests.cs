using SharpBlock.Drivers.Format.Vdi;
using SharpBlock.Errors;
using SharpBlock.Fuzz;
using SharpBlock.Graph;

namespace SharpBlock.Tests.Drivers.Vdi;

/// <summary>
/// Mutates the header and block map of a real image and drives it through the vdi fuzz target (open, read
/// everything, map, write, flush, check, reopen). Anything but a BlockException is a bug, as is a hang. A failing
/// case is printed (VDI_FUZZ_SEED=S VDI_FUZZ_CASES=1 replays it) so it can become a named regression test.
/// </summary>
[Collection(SharpBlock.Tests.Fuzz.FuzzCollection.Name)]
public class VdiFuzzTests
{
    private static async Task<byte[]> SeedImageAsync()
    {
        var mem = VdiNodeTests.Memory(await VdiNodeTests.NewImageAsync(5 << 20, isStatic: false));
        var node = await VdiNode.OpenAsync(mem, NodeSettings.Default);
        await using (node)
        {
            var rnd = new Random(1);
            byte[] d = new byte[6000];
            foreach (long at in (long[])[0, 3 << 20, (1 << 20) + 77])
            {
                rnd.NextBytes(d);
                await node.WriteAsync(at, d);
            }
        }

        return mem.ToArray();
    }

    [Fact]
    public async Task Mutated_images_never_crash_or_hang()
    {
        byte[] seed = await SeedImageAsync();
        await FuzzCases.RunAsync("vdi", "VDI", seed, [(0, 512), (0x140, 0x80), (512, 32)], async img =>
        {
            try
            {
                await (await VdiNode.OpenAsync(VdiNodeTests.Memory(img, true), NodeSettings.Default with { ReadOnly = true })).DisposeAsync();
                return true;
            }
            catch (BlockException)
            {
                return false;
            }
        });
    }
}

/// <summary>The replay loop of the simple image formats' fuzz tests: seeded mutations of chosen regions through a fuzz target.</summary>
internal static class FuzzCases
{
    public static async Task RunAsync(string target, string envPrefix, byte[] seed, (long Start, int Length)[] regions, Func<byte[], Task<bool>> opens)
    {
        var fuzz = FuzzTargets.Find(target)!;
        // PREFIX_FUZZ_SEED=S with PREFIX_FUZZ_CASES=1 replays one case; the base seed differs per run otherwise.
        int first = Environment.GetEnvironmentVariable(envPrefix + "_FUZZ_SEED") is { } e ? int.Parse(e, System.Globalization.CultureInfo.InvariantCulture) : Random.Shared.Next(1 << 30);
        int count = Environment.GetEnvironmentVariable(envPrefix + "_FUZZ_CASES") is { } n ? int.Parse(n, System.Globalization.CultureInfo.InvariantCulture) : 300;
        int ran = 0, opened = 0, refused = 0;
        for (int iteration = first; iteration < first + count; iteration++)
        {
            var rnd = new Random(iteration);
            byte[] img = (byte[])seed.Clone();
            int mutations = rnd.Next(1, 6);
            for (int m = 0; m < mutations; m++)
            {
                var (start, len) = regions[rnd.Next(regions.Length)];
                int at = (int)Math.Min(img.Length - 1, start + rnd.Next(len));
                switch (rnd.Next(3))
                {
                    case 0:
                        img[at] ^= (byte)(1 << rnd.Next(8));
                        break;
                    case 1:
                        img[at] = (byte)rnd.Next(256);
                        break;
                    default:
                        img[at] = 0xFF;
                        break;
                }
            }

            try
            {
                fuzz.RunBounded(img, TimeSpan.FromSeconds(20));
            }
            catch (Exception ex)
            {
                Assert.Fail($"{envPrefix}_FUZZ_SEED={iteration}: {ex.GetType().Name}: {ex}");
            }

            ran++;
            if (await opens(img))
                opened++;
            else
                refused++;
        }

        Assert.Equal(count, ran);
        // Damage that the open refuses and damage it lets through to the I/O must both occur.
        if (count >= 50)
            Assert.True(opened > 0 && refused > 0, $"base seed {first}: {opened} opened, {refused} refused");
    }
}
