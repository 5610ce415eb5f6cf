using System.Buffers.Binary;
using SharpBlock.Drivers.Format.Vmdk;
using SharpBlock.Fuzz;
using SharpBlock.Testing;

namespace SharpBlock.Tests.Drivers.Vmdk;

/// <summary>
/// Mutates the header, descriptor, grain directories, grain tables and stream markers of real images and drives
/// them through the fuzz target's steps. Anything but a BlockException is a bug, as is a hang. A failing seed is
/// printed (VMDK_FUZZ_SEED=S VMDK_FUZZ_CASES=1 replays it) so it can become a named regression test.
/// </summary>
[Collection(SharpBlock.Tests.Fuzz.FuzzCollection.Name)]
public class VmdkFuzzTests
{
    private static async Task<byte[]> SparseSeedAsync(TempDir dir)
    {
        string p = dir.File("seed.vmdk");
        await VmdkCreator.CreateAsync(p, new VmdkCreateOptions { Size = 2 << 20, ZeroedGrain = true });
        await using (var img = await VmdkTestImage.OpenAsync(p))
        {
            var rnd = new Random(1);
            byte[] d = new byte[9000];
            for (int i = 0; i < 8; i++)
            {
                rnd.NextBytes(d);
                await img.Node.WriteAsync(rnd.Next((2 << 20) - d.Length), d);
            }

            await img.Node.WriteZeroesAsync(1 << 20, 65536);
        }

        return await File.ReadAllBytesAsync(p);
    }

    [Fact]
    public async Task Mutated_images_never_crash_or_hang()
    {
        using var dir = new TempDir();
        byte[] sparse = await SparseSeedAsync(dir);
        var h = VmdkSparseHeader.Read(sparse);
        int gt = (int)BinaryPrimitives.ReadUInt32LittleEndian(sparse.AsSpan((int)h.GdOffset * 512)) * 512;
        var rg = new Random(4);
        var grains = new Dictionary<int, byte[]>();
        foreach (int g in new[] { 0, 3, 20 })
        {
            byte[] d = new byte[65536];
            rg.NextBytes(d.AsSpan(0, 3000));
            grains[g] = d;
        }

        byte[] stream = VmdkTestImage.VmwareStream(32 * 128, grains);
        (byte[] Image, (int Start, int Length)[] Regions)[] seeds =
        [
            (sparse, [(0, 80), (512, 400), ((int)h.RgdOffset * 512, 8), ((int)h.GdOffset * 512, 8), (gt, 2048), (65536, 64)]),
            (stream, [(0, 80), (65536, 64), (stream.Length - 1536, 1536), (stream.Length - 4096, 2560)]),
        ];
        var target = FuzzTargets.Find("vmdk")!;
        // VMDK_FUZZ_SEED=S with VMDK_FUZZ_CASES=1 replays one case; the base seed differs per run otherwise.
        int first = Environment.GetEnvironmentVariable("VMDK_FUZZ_SEED") is { } e ? int.Parse(e, System.Globalization.CultureInfo.InvariantCulture) : Random.Shared.Next(1 << 30);
        int count = Environment.GetEnvironmentVariable("VMDK_FUZZ_CASES") is { } n ? int.Parse(n, System.Globalization.CultureInfo.InvariantCulture) : 300;
        int ran = 0, opened = 0, refused = 0;
        for (int iteration = first; iteration < first + count; iteration++)
        {
            var rnd = new Random(iteration);
            var (seed, regions) = seeds[iteration % seeds.Length];
            byte[] img = (byte[])seed.Clone();
            int mutations = rnd.Next(1, 6);
            for (int m = 0; m < mutations; m++)
            {
                var (start, len) = regions[rnd.Next(regions.Length)];
                int at = Math.Min(img.Length - 1, start + rnd.Next(len));
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
                target.RunBounded(img, TimeSpan.FromSeconds(20));
            }
            catch (Exception ex)
            {
                Assert.Fail($"VMDK_FUZZ_SEED={iteration}: {ex.GetType().Name}: {ex}");
            }

            ran++;
            if (await OpensAsync(img))
                opened++;
            else
                refused++;
        }

        Assert.Equal(count, ran);
        // Damage that the open refuses and damage it lets through to the I/O must both occur.
        if (count >= 50)
            Assert.True(opened > 0 && refused > 0, $"base seed {first}: {opened} opened, {refused} refused");
    }

    private static async Task<bool> OpensAsync(byte[] img)
    {
        await using var file = new SharpBlock.Drivers.Protocol.Memory.MemoryNode(img, SharpBlock.Graph.NodeSettings.Default with { ReadOnly = true }, "f.vmdk");
        var node = await SharpBlock.Fuzz.Targets.VmdkImageTarget.OpenAsync(file, readOnly: true);
        if (node == null)
            return false;
        await node.DisposeAsync();
        return true;
    }
}
