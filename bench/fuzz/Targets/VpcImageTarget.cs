using SharpBlock.Drivers.Format.Vpc;
using SharpBlock.Drivers.Protocol.Memory;
using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Fuzz.Targets;

/// <summary>
/// A whole VHD in memory through the real open path (footer at 0 or at the end, checksum, dynamic header,
/// BAT), then reads, block status, an allocating and an in-place write (new block, footer moved, BAT at
/// flush), close, and a read-only reopen of what the writes left. Any step may fail with a BlockException.
/// </summary>
public static class VpcImageTarget
{
    /// <summary>Room for a few new 2 MiB blocks; a BAT that points far past that fails with ENOSPC.</summary>
    private const long Headroom = 6L << 20;

    private const long ReadSpan = 4L << 20;

    public static async Task RunAsync(byte[] image, FuzzContext context)
    {
        var file = context.Memory(image, NodeSettings.Default, "fuzz.vpc", image.Length + Headroom);
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

            var after = context.Memory(file.ToArray(), NodeSettings.Default with { ReadOnly = true }, "fuzz.vpc", MemoryNode.DefaultMaxLength);
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

    internal static async Task<VpcNode?> OpenAsync(BlockNode file, bool readOnly)
    {
        try
        {
            return await VpcNode.OpenAsync(file, NodeSettings.Default with { ReadOnly = readOnly }).ConfigureAwait(false);
        }
        catch (BlockException)
        {
            return null;
        }
    }
}
