using SharpBlock.Drivers.Format.Cloop;
using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Fuzz.Targets;

/// <summary>
/// A whole cloop image in memory through the real open path (header, offset table), then what walks the
/// table: reads of every block in reach (each a zlib stream), block status and info.
/// </summary>
public static class CloopImageTarget
{
    public static Task RunAsync(byte[] image, FuzzContext context) =>
        ReadOnlyImageSteps.RunAsync(image, context, "fuzz.cloop", static (file, settings) => CloopNode.OpenAsync(file, settings));
}

/// <summary>The steps of the read-only formats' targets: open read-only, read and map, a write that must be refused, info.</summary>
internal static class ReadOnlyImageSteps
{
    private const long ReadSpan = 3L << 20;

    public static async Task RunAsync<T>(byte[] image, FuzzContext context, string name, Func<BlockNode, NodeSettings, ValueTask<T>> open)
        where T : BlockNode
    {
        var settings = NodeSettings.Default with { ReadOnly = true };
        var file = context.Memory(image, settings, name, image.Length);
        await using (file.ConfigureAwait(false))
        {
            T node;
            try
            {
                node = await open(file, settings).ConfigureAwait(false);
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
