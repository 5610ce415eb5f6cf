using SharpBlock.Drivers;
using SharpBlock.Drivers.Format.Bochs;
using SharpBlock.Drivers.Format.Parallels;
using SharpBlock.Drivers.Protocol.Memory;
using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Fuzz.Targets;

/// <summary>
/// A whole Parallels image in memory through the real open path (magic, tracks, BAT), then reads, block
/// status, an allocating and an in-place write, check, close (inuse mark cleared, file cut to the data end)
/// and a read-only reopen with check. Any step may fail with a BlockException.
/// </summary>
public static class ParallelsImageTarget
{
    /// <summary>Room for a few new clusters; a BAT entry far past that fails with ENOSPC.</summary>
    private const long Headroom = 6L << 20;

    private const long ReadSpan = 4L << 20;

    public static async Task RunAsync(byte[] image, FuzzContext context)
    {
        var file = context.Memory(image, NodeSettings.Default, "fuzz.parallels", image.Length + Headroom);
        await using (file.ConfigureAwait(false))
        {
            var node = await OpenAsync(file, readOnly: false).ConfigureAwait(false) ?? await OpenAsync(file, readOnly: true).ConfigureAwait(false);
            if (node == null)
                return;
            await using (node.ConfigureAwait(false))
            {
                await FuzzSteps.ReadAndMapAsync(node, ReadSpan).ConfigureAwait(false);
                await FuzzSteps.WriteAsync(node, ReadSpan, FuzzSteps.Hash(image)).ConfigureAwait(false);
                await FuzzSteps.Step(() => node.CheckAsync(ImageCheckMode.None, null)).ConfigureAwait(false);
                await FuzzSteps.Step(() => node.GetImageInfoAsync()).ConfigureAwait(false);
            }

            var after = context.Memory(file.ToArray(), NodeSettings.Default with { ReadOnly = true }, "fuzz.parallels", MemoryNode.DefaultMaxLength);
            await using (after.ConfigureAwait(false))
            {
                var again = await OpenAsync(after, readOnly: true).ConfigureAwait(false);
                if (again != null)
                {
                    await using (again.ConfigureAwait(false))
                    {
                        await FuzzSteps.ReadAndMapAsync(again, ReadSpan).ConfigureAwait(false);
                        await FuzzSteps.Step(() => again.CheckAsync(ImageCheckMode.None, null)).ConfigureAwait(false);
                    }
                }
            }
        }
    }

    internal static async Task<ParallelsNode?> OpenAsync(BlockNode file, bool readOnly)
    {
        try
        {
            return await ParallelsNode.OpenAsync(file, NodeSettings.Default with { ReadOnly = readOnly }).ConfigureAwait(false);
        }
        catch (BlockException)
        {
            return null;
        }
    }
}

/// <summary>A whole Bochs redolog in memory through the real (read-only) open path, then reads, block status and info.</summary>
public static class BochsImageTarget
{
    private const long ReadSpan = 4L << 20;

    public static async Task RunAsync(byte[] image, FuzzContext context)
    {
        var file = context.Memory(image, NodeSettings.Default with { ReadOnly = true }, "fuzz.bochs", MemoryNode.DefaultMaxLength);
        await using (file.ConfigureAwait(false))
        {
            BochsNode node;
            try
            {
                node = await BochsNode.OpenAsync(file, NodeSettings.Default with { ReadOnly = true }).ConfigureAwait(false);
            }
            catch (BlockException)
            {
                return;
            }

            await using (node.ConfigureAwait(false))
            {
                await FuzzSteps.ReadAndMapAsync(node, ReadSpan).ConfigureAwait(false);
                await FuzzSteps.Step(() => node.GetImageInfoAsync()).ConfigureAwait(false);
            }
        }
    }
}
