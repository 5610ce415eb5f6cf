using SharpBlock.Drivers.Format.Qcow;
using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Fuzz.Targets;

/// <summary>
/// A whole qcow (version 1) image in memory through the real open path (header, backing name, L1 table),
/// then what walks the tables: reads (plain and compressed clusters), block status, allocating and in-place
/// writes, zeroes, flush (which writes L2 and L1 back), close, and a read-only reopen and read of the result.
/// </summary>
public static class QcowImageTarget
{
    /// <summary>Room for a few new clusters and L2 tables; entries pointing far past it fail with ENOSPC.</summary>
    private const long Headroom = 4L << 20;

    private const long ReadSpan = 3L << 20;

    public static async Task RunAsync(byte[] image, FuzzContext context)
    {
        var file = context.Memory(image, NodeSettings.Default, "fuzz.qcow", image.Length + Headroom);
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

            var after = context.Memory(file.ToArray(), NodeSettings.Default with { ReadOnly = true }, "fuzz.qcow", Drivers.Protocol.Memory.MemoryNode.DefaultMaxLength);
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

    internal static async Task<QcowNode?> OpenAsync(BlockNode file, bool readOnly)
    {
        try
        {
            return await QcowNode.OpenAsync(file, NodeSettings.Default with { ReadOnly = readOnly }).ConfigureAwait(false);
        }
        catch (BlockException)
        {
            return null;
        }
    }
}
