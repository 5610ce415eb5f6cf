using SharpBlock.Drivers.Format.Cow;
using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Fuzz.Targets;

/// <summary>
/// A whole cow (UML COW v2) image in memory through the real open path (header, sector bitmap),
/// then what walks the bitmap: reads, block status, whole-sector and partial
/// writes, zeroes, flush (which writes the bitmap back), close, and a read-only reopen and read of the result.
/// </summary>
public static class CowImageTarget
{
    /// <summary>Room for the data area of the sectors the writes reach.</summary>
    private const long Headroom = 4L << 20;

    private const long ReadSpan = 3L << 20;

    public static async Task RunAsync(byte[] image, FuzzContext context)
    {
        var file = context.Memory(image, NodeSettings.Default, "fuzz.cow", image.Length + Headroom);
        await using (file.ConfigureAwait(false))
        {
            var node = await OpenAsync(file, readOnly: false).ConfigureAwait(false) ?? await OpenAsync(file, readOnly: true).ConfigureAwait(false);
            if (node == null)
                return;
            await using (node.ConfigureAwait(false))
            {
                await FuzzSteps.ReadAndMapAsync(node, ReadSpan).ConfigureAwait(false);
                await FuzzSteps.WriteAsync(node, ReadSpan, FuzzSteps.Hash(image)).ConfigureAwait(false);
                await FuzzSteps.Step(() => node.GetImageInfoAsync()).ConfigureAwait(false);
            }

            var after = context.Memory(file.ToArray(), NodeSettings.Default with { ReadOnly = true }, "fuzz.cow", Drivers.Protocol.Memory.MemoryNode.DefaultMaxLength);
            await using (after.ConfigureAwait(false))
            {
                var again = await OpenAsync(after, readOnly: true).ConfigureAwait(false);
                if (again != null)
                {
                    await using (again.ConfigureAwait(false))
                        await FuzzSteps.ReadAndMapAsync(again, ReadSpan).ConfigureAwait(false);
                }
            }
        }
    }

    internal static async Task<CowNode?> OpenAsync(BlockNode file, bool readOnly)
    {
        try
        {
            return await CowNode.OpenAsync(file, NodeSettings.Default with { ReadOnly = readOnly }).ConfigureAwait(false);
        }
        catch (BlockException)
        {
            return null;
        }
    }
}
