using SharpBlock.Drivers;
using SharpBlock.Drivers.Format.Qed;
using SharpBlock.Drivers.Protocol.Memory;
using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Fuzz.Targets;

/// <summary>
/// A whole QED image in memory through the real open path (header, L1 table, the need-check repair), then
/// what walks the tables: reads, block status, allocating and in-place writes, zeroes, flush (which writes
/// L2 and L1 back), check with and without repair, close, and a read-only reopen and check of the result.
/// Any step may fail with a BlockException; each is tried regardless.
/// </summary>
public static class QedImageTarget
{
    /// <summary>Room for a few new clusters and L2 tables; offsets far past that fail with ENOSPC.</summary>
    private const long Headroom = 4L << 20;

    private const long ReadSpan = 3L << 20;

    public static async Task RunAsync(byte[] image, FuzzContext context)
    {
        var file = context.Memory(image, NodeSettings.Default, "fuzz.qed", image.Length + Headroom);
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
                await FuzzSteps.Step(() => node.CheckAsync(ImageCheckMode.All, null)).ConfigureAwait(false);
                await FuzzSteps.Step(() => node.GetImageInfoAsync()).ConfigureAwait(false);
            }

            var after = context.Memory(file.ToArray(), NodeSettings.Default with { ReadOnly = true }, "fuzz.qed", MemoryNode.DefaultMaxLength);
            await using (after.ConfigureAwait(false))
            {
                var again = await OpenAsync(after, readOnly: true).ConfigureAwait(false);
                if (again != null)
                {
                    await using (again.ConfigureAwait(false))
                        await FuzzSteps.Step(() => again.CheckAsync(ImageCheckMode.None, null)).ConfigureAwait(false);
                }
            }
        }
    }

    internal static async Task<QedNode?> OpenAsync(BlockNode file, bool readOnly)
    {
        try
        {
            return await QedNode.OpenAsync(file, NodeSettings.Default with { ReadOnly = readOnly }).ConfigureAwait(false);
        }
        catch (BlockException)
        {
            return null;
        }
    }
}
