using SharpBlock.Drivers.Format.Cloop;
using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Fuzz.Targets;

/// <summary>
/// A whole cloop image in memory through the real open path (header, offset table), then what walks the
/// table: reads of every block in reach (each a zlib stream), block status and info. The format is read-only,
/// so writes must fail with a BlockException too.
/// </summary>
public static class CloopImageTarget
{
    private const long ReadSpan = 3L << 20;

    public static async Task RunAsync(byte[] image, FuzzContext context)
    {
        var settings = NodeSettings.Default with { ReadOnly = true };
        var file = context.Memory(image, settings, "fuzz.cloop", image.Length);
        await using (file.ConfigureAwait(false))
        {
            CloopNode node;
            try
            {
                node = await CloopNode.OpenAsync(file, settings).ConfigureAwait(false);
            }
            catch (BlockException)
            {
                return;
            }

            await using (node.ConfigureAwait(false))
            {
                await FuzzSteps.ReadAndMapAsync(node, ReadSpan).ConfigureAwait(false);
                await FuzzSteps.Step(() => node.WriteAsync(0, new byte[512])).ConfigureAwait(false);
                await FuzzSteps.Step(() => node.GetImageInfoAsync()).ConfigureAwait(false);
            }
        }
    }
}
