using System.Buffers.Binary;
using SharpBlock.Drivers;
using SharpBlock.Drivers.Format.Qcow2;
using SharpBlock.Errors;
using SharpBlock.Testing;

namespace SharpBlock.Tests.Drivers.Qcow2;

/// <summary>
/// Mutates the header, L1, L2 and refcount bytes of a real image and drives it (open, read everything, map,
/// write, check). Anything but a BlockException (ImageCorruptException included) is a bug, as is a hang.
/// A failing seed is printed (QCOW2_FUZZ_SEED=S QCOW2_FUZZ_CASES=1 replays it) so it can become a named regression test.
/// </summary>
[Collection(SharpBlock.Tests.Fuzz.FuzzCollection.Name)]
public class Qcow2FuzzTests
{
    private static async Task<byte[]> SeedImageAsync(TempDir dir)
    {
        string p = dir.File("seed.qcow2");
        await Qcow2TestImage.CreateAsync(p, 1 << 20, 4096);
        await using (var img = await Qcow2TestImage.OpenAsync(p))
        {
            var rnd = new Random(1);
            byte[] d = new byte[6000];
            for (int i = 0; i < 12; i++)
            {
                rnd.NextBytes(d);
                await img.Node.WriteAsync(rnd.Next((1 << 20) - d.Length), d);
            }

            byte[] c = new byte[4096];
            Array.Fill(c, (byte)'q');
            await img.Qcow2.WriteCompressedAsync(900 * 1024, c);
            await img.Node.WriteZeroesAsync(512 * 1024, 8192);
        }

        return await File.ReadAllBytesAsync(p);
    }

    [Fact]
    public async Task Mutated_images_never_crash_or_hang()
    {
        using var dir = new TempDir();
        byte[] seed = await SeedImageAsync(dir);
        var h = Qcow2Header.Read(seed);
        long l1 = (long)h.L1TableOffset;
        long rt = (long)h.RefcountTableOffset;
        long l2 = (long)(BinaryPrimitives.ReadUInt64BigEndian(seed.AsSpan((int)l1)) & Qcow2Layout.OffsetMask);
        long rb = (long)(BinaryPrimitives.ReadUInt64BigEndian(seed.AsSpan((int)rt)) & Qcow2Layout.OffsetMask);
        (long Start, int Length)[] regions = [(0, 112), (0, 4096), (l1, 16), (rt, 16), (l2, 4096), (rb, 4096)];
        string p = dir.File("fuzz.qcow2");
        // QCOW2_FUZZ_SEED=S with QCOW2_FUZZ_CASES=1 replays one case; the base seed differs per run otherwise.
        int first = Environment.GetEnvironmentVariable("QCOW2_FUZZ_SEED") is { } e ? int.Parse(e, System.Globalization.CultureInfo.InvariantCulture) : Random.Shared.Next(1 << 30);
        int count = Environment.GetEnvironmentVariable("QCOW2_FUZZ_CASES") is { } n ? int.Parse(n, System.Globalization.CultureInfo.InvariantCulture) : 300;
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

            await File.WriteAllBytesAsync(p, img);
            var run = DriveAsync(p, rnd);
            var done = await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(20)));
            Assert.True(done == run, $"QCOW2_FUZZ_SEED={iteration} hung");
            var ex = run.Exception?.InnerException;
            if (ex != null && ex is not BlockException)
                Assert.Fail($"QCOW2_FUZZ_SEED={iteration}: {ex.GetType().Name}: {ex}");
            ran++;
            if (run.IsCompletedSuccessfully && await run)
                opened++;
            else
                refused++;
        }

        Assert.Equal(count, ran);
        // Damage that the open refuses and damage it lets through to the I/O must both occur.
        if (count >= 50)
            Assert.True(opened > 0 && refused > 0, $"base seed {first}: {opened} opened, {refused} refused");
    }

    /// <summary>Opens and exercises the image; false when the open refused it.</summary>
    private static async Task<bool> DriveAsync(string path, Random rnd)
    {
        Qcow2TestImage img;
        try
        {
            img = await Qcow2TestImage.OpenAsync(path);
        }
        catch (BlockException)
        {
            return false;
        }

        await using (img)
        {
            long len = Math.Min(img.Node.Length, 4 << 20);
            byte[] buf = new byte[64 * 1024];
            for (long off = 0; off < len; off += buf.Length)
            {
                try
                {
                    await img.Node.ReadAsync(off, buf.AsMemory(0, (int)Math.Min(buf.Length, len - off)));
                }
                catch (BlockException)
                {
                }
            }

            for (long off = 0; off < len;)
            {
                try
                {
                    var st = await img.Node.GetBlockStatusAsync(off, len - off);
                    off += st.Length;
                }
                catch (BlockException)
                {
                    break;
                }
            }

            try
            {
                byte[] d = new byte[5000];
                rnd.NextBytes(d);
                if (len > d.Length)
                    await img.Node.WriteAsync(rnd.NextInt64(len - d.Length), d);
                await img.Node.FlushAsync();
            }
            catch (BlockException)
            {
            }

            try
            {
                await img.Qcow2.CheckAsync(ImageCheckMode.None, null);
            }
            catch (BlockException)
            {
            }
        }

        return true;
    }
}
