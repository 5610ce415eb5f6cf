using SharpBlock.Drivers.Format.Dmg;
using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Fuzz.Targets;

/// <summary>
/// A whole dmg image in memory through the real open path (trailer, plist or resource fork, mish tables), then
/// what walks the chunks: reads of every chunk in reach (raw, zlib, bzip2 or zeros), block status and info. The
/// format is read-only, so writes must fail with a BlockException too.
/// </summary>
public static class DmgImageTarget
{
    private const long ReadSpan = 3L << 20;

    public static async Task RunAsync(byte[] image, FuzzContext context)
    {
        var settings = NodeSettings.Default with { ReadOnly = true };
        var file = context.Memory(image, settings, "fuzz.dmg", image.Length);
        await using (file.ConfigureAwait(false))
        {
            DmgNode node;
            try
            {
                node = await DmgNode.OpenAsync(file, settings).ConfigureAwait(false);
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
