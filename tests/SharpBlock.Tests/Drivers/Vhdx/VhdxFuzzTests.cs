using System.Buffers.Binary;
using SharpBlock.Drivers.Format.Vhdx;
using SharpBlock.Fuzz;
using SharpBlock.Fuzz.Targets;

namespace SharpBlock.Tests.Drivers.Vhdx;

/// <summary>
/// Mutates the headers, region table, metadata, BAT and log of real images (re-sealing the checksums in half
/// the cases, so the damage gets past them) and drives each through the fuzz target. Anything but a
/// BlockException is a bug, as is a hang. A failing case names its seed (VHDX_FUZZ_SEED=S VHDX_FUZZ_CASES=1
/// replays it) so it can become a named regression test.
/// </summary>
[Collection(SharpBlock.Tests.Fuzz.FuzzCollection.Name)]
public class VhdxFuzzTests
{
    private const int Block = 1 << 20;

    private static async Task<byte[][]> SeedsAsync()
    {
        byte[] dynamic = await VhdxTestImage.CreateAsync(4 << 20, Block);
        var file = VhdxTestImage.File(dynamic);
        await using (var n = await VhdxTestImage.OpenAsync(file))
        {
            await n.WriteAsync(100, new byte[3000]);
            await n.WriteAsync((2 << 20) - 10, Enumerable.Repeat((byte)7, 20).ToArray());
        }

        byte[] written = file.ToArray();
        byte[] fixedImage = await VhdxTestImage.CreateAsync((3 << 20) + 512, Block, isFixed: true, zero: false);
        byte[] logged = await VhdxTestImage.CreateAsync(4 << 20, Block);
        long md = BinaryPrimitives.ReadInt64LittleEndian(logged.AsSpan((int)VhdxLayout.RegionTable1Offset + VhdxRegionTable.EntriesOffset + VhdxRegionEntry.Size + VhdxRegionEntry.FileOffsetOffset));
        VhdxHostileImageTests.LeaveLog(logged, seq =>
        [
            new VhdxLogDescriptor { Signature = VhdxLayout.LogZeroDescriptorSignature, LeadingBytes = 8192, FileOffset = (ulong)md + (1 << 20), SequenceNumber = seq },
            new VhdxLogDescriptor { Signature = VhdxLayout.LogDataDescriptorSignature, LeadingBytes = 1, TrailingBytes = 2, FileOffset = (ulong)md + (1 << 20), SequenceNumber = seq },
        ], (ulong)logged.Length);
        return [written, fixedImage, logged];
    }

    [Fact]
    public async Task The_sparse_form_round_trips()
    {
        foreach (byte[] image in await SeedsAsync())
        {
            byte[] encoded = VhdxImageTarget.Encode(image);
            Assert.True(encoded.Length < 100_000, $"a seed of {encoded.Length} bytes is too big for AFL");
            Assert.Equal(image, VhdxImageTarget.Decode(encoded));
        }
    }

    /// <summary>The AFL seeds (qemu-img's images in the sparse form) are images the target opens.</summary>
    [Fact]
    public async Task The_corpus_seeds_open()
    {
        var seeds = FuzzTargets.Find("vhdx")!.Seeds().ToList();
        Assert.NotEmpty(seeds);
        foreach (string seed in seeds)
            Assert.True(await VhdxImageTarget.RunAndReportAsync(await File.ReadAllBytesAsync(seed), new FuzzContext()), seed);
    }

    [Fact]
    public async Task Mutated_images_never_crash_or_hang()
    {
        byte[][] seeds = await SeedsAsync();
        var target = FuzzTargets.Find("vhdx")!;
        int first = Environment.GetEnvironmentVariable("VHDX_FUZZ_SEED") is { } e ? int.Parse(e, System.Globalization.CultureInfo.InvariantCulture) : Random.Shared.Next(1 << 30);
        int count = Environment.GetEnvironmentVariable("VHDX_FUZZ_CASES") is { } c ? int.Parse(c, System.Globalization.CultureInfo.InvariantCulture) : 200;
        int ran = 0, opened = 0, refused = 0;
        for (int iteration = first; iteration < first + count; iteration++)
        {
            var rnd = new Random(iteration);
            byte[] img = (byte[])seeds[rnd.Next(seeds.Length)].Clone();
            long bat = BinaryPrimitives.ReadInt64LittleEndian(img.AsSpan((int)VhdxLayout.RegionTable1Offset + VhdxRegionTable.EntriesOffset + VhdxRegionEntry.FileOffsetOffset));
            long md = BinaryPrimitives.ReadInt64LittleEndian(img.AsSpan((int)VhdxLayout.RegionTable1Offset + VhdxRegionTable.EntriesOffset + VhdxRegionEntry.Size + VhdxRegionEntry.FileOffsetOffset));
            (long Start, int Length)[] regions =
            [
                (VhdxLayout.Header1Offset, 80), (VhdxLayout.Header2Offset, 80), (VhdxLayout.RegionTable1Offset, 80),
                (md, 200), (md + VhdxLayout.MetadataTableSize, 40), (bat, 64), (VhdxLayout.HeaderSectionEnd, 8192),
            ];
            int mutations = rnd.Next(1, 5);
            for (int m = 0; m < mutations; m++)
            {
                var (start, len) = regions[rnd.Next(regions.Length)];
                int at = (int)Math.Min(img.Length - 8, start + rnd.Next(len));
                switch (rnd.Next(4))
                {
                    case 0:
                        img[at] ^= (byte)(1 << rnd.Next(8));
                        break;
                    case 1:
                        img[at] = (byte)rnd.Next(256);
                        break;
                    case 2:
                        BinaryPrimitives.WriteUInt64LittleEndian(img.AsSpan(at), rnd.Next(2) == 0 ? ulong.MaxValue : (ulong)rnd.NextInt64() >> rnd.Next(64));
                        break;
                    default:
                        BinaryPrimitives.WriteUInt32LittleEndian(img.AsSpan(at), (uint)rnd.Next() >> rnd.Next(32));
                        break;
                }
            }

            if (rnd.Next(2) == 0)
            {
                VhdxLayout.Seal(img.AsSpan((int)VhdxLayout.Header1Offset, VhdxHeader.Size), VhdxHeader.ChecksumOffset);
                VhdxLayout.Seal(img.AsSpan((int)VhdxLayout.Header2Offset, VhdxHeader.Size), VhdxHeader.ChecksumOffset);
                VhdxLayout.Seal(img.AsSpan((int)VhdxLayout.RegionTable1Offset, VhdxRegionTable.Size), VhdxRegionTable.ChecksumOffset);
                uint entry = BinaryPrimitives.ReadUInt32LittleEndian(img.AsSpan((int)VhdxLayout.HeaderSectionEnd + VhdxLogEntryHeader.EntryLengthOffset));
                if (entry is > 0 and <= 1 << 20)
                    VhdxLayout.Seal(img.AsSpan((int)VhdxLayout.HeaderSectionEnd, (int)entry), VhdxLogEntryHeader.ChecksumOffset);
            }

            var run = Task.Run(() => VhdxImageTarget.RunAndReportAsync(VhdxImageTarget.Encode(img), new FuzzContext()));
            var done = await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(20)));
            Assert.True(done == run, $"VHDX_FUZZ_SEED={iteration} hung");
            if (run.Exception?.InnerException is { } ex)
                Assert.Fail($"VHDX_FUZZ_SEED={iteration}: {ex.GetType().Name}: {ex}");
            ran++;
            if (await run)
                opened++;
            else
                refused++;
        }

        Assert.Equal(count, ran);
        Assert.NotNull(target);
        // Damage that the open refuses and damage it lets through to the I/O must both occur.
        if (count >= 50)
            Assert.True(opened > 0 && refused > 0, $"base seed {first}: {opened} opened, {refused} refused");
    }
}
