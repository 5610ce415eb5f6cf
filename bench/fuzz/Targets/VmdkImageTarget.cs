using SharpBlock.Drivers;
using SharpBlock.Drivers.Format.Vmdk;
using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Fuzz.Targets;

/// <summary>
/// A whole single-file VMDK image (monolithicSparse or streamOptimized: header, footer, embedded descriptor,
/// grain directories and tables, markers, compressed grains), held in memory, through the real open path,
/// then reads, block status, writes, zeroes, flush, check and info, and a read-only reopen of what the writes
/// left. A hostile image may fail any step with a BlockException; each step is tried regardless.
/// </summary>
public static class VmdkImageTarget
{
    /// <summary>Room for the writes to grow the image; a grain pointing far past that fails instead of growing memory.</summary>
    private const long Headroom = 8L << 20;

    /// <summary>How much of the guest the reads cover: enough for every seed, bounded for huge capacities.</summary>
    private const long ReadSpan = 512 << 10;

    public static async Task RunAsync(byte[] image, FuzzContext context)
    {
        var file = context.Memory(image, NodeSettings.Default, "fuzz.vmdk", image.Length + Headroom);
        await using (file.ConfigureAwait(false))
        {
            var node = await OpenAsync(file, readOnly: false).ConfigureAwait(false) ?? await OpenAsync(file, readOnly: true).ConfigureAwait(false);
            if (node == null)
                return;
            await using (node.ConfigureAwait(false))
                await ExerciseAsync(node, Hash(image)).ConfigureAwait(false);

            var after = context.Memory(file.ToArray(), NodeSettings.Default with { ReadOnly = true }, "fuzz.vmdk", image.Length + Headroom);
            await using (after.ConfigureAwait(false))
            {
                var again = await OpenAsync(after, readOnly: true).ConfigureAwait(false);
                if (again != null)
                {
                    await using (again.ConfigureAwait(false))
                        await Step(() => again.CheckAsync(ImageCheckMode.None, null)).ConfigureAwait(false);
                }
            }
        }
    }

    /// <summary>The open the fuzz target and its replay test share; null when the image is refused.</summary>
    public static async Task<VmdkNode?> OpenAsync(BlockNode file, bool readOnly)
    {
        try
        {
            return await VmdkNode.OpenAsync(file, NodeSettings.Default with { ReadOnly = readOnly }).ConfigureAwait(false);
        }
        catch (BlockException)
        {
            return null;
        }
    }

    private static async Task ExerciseAsync(VmdkNode node, ulong h)
    {
        long span = Math.Min(node.Length, ReadSpan);
        byte[] buf = new byte[16 << 10];
        for (long off = 0; off < span; off += buf.Length)
        {
            int n = (int)Math.Min(buf.Length, span - off);
            await Step(() => node.ReadAsync(off, buf.AsMemory(0, n))).ConfigureAwait(false);
        }

        long pos = 0;
        for (int i = 0; i < 64 && pos < span; i++)
        {
            try
            {
                var st = await node.GetBlockStatusAsync(pos, span - pos).ConfigureAwait(false);
                if (st.Length <= 0)
                    throw new FuzzAssertionException($"block status at {pos} returned a length of {st.Length}");
                pos += st.Length;
            }
            catch (BlockException)
            {
                break;
            }
        }

        await Step(async () => await node.GetImageInfoAsync().ConfigureAwait(false)).ConfigureAwait(false);
        if (!node.ReadOnly && span > 0)
        {
            byte[] data = new byte[1 + (int)(h % 70000)];
            Array.Fill(data, (byte)(h >> 8));
            long at = (long)((h >> 16) % (ulong)span);
            int len = (int)Math.Min(data.Length, span - at);
            await Step(() => node.WriteAsync(at, data.AsMemory(0, len))).ConfigureAwait(false);
            long z = (long)((h >> 32) % (ulong)span);
            await Step(() => node.WriteZeroesAsync(z, Math.Min(65536, span - z))).ConfigureAwait(false);
            await Step(() => node.ReadAsync(at, buf.AsMemory(0, Math.Min(len, buf.Length)))).ConfigureAwait(false);
            await Step(() => node.FlushAsync()).ConfigureAwait(false);
        }

        await Step(() => node.CheckAsync(ImageCheckMode.None, null)).ConfigureAwait(false);
    }

    private static async Task Step(Func<ValueTask> op)
    {
        try
        {
            await op().ConfigureAwait(false);
        }
        catch (BlockException)
        {
        }
    }

    private static async Task Step<T>(Func<ValueTask<T>> op)
    {
        try
        {
            await op().ConfigureAwait(false);
        }
        catch (BlockException)
        {
        }
    }

    /// <summary>FNV-1a: where the writes land depends on the input, so AFL can steer them too.</summary>
    private static ulong Hash(byte[] b)
    {
        ulong h = 14695981039346656037;
        foreach (byte x in b)
            h = (h ^ x) * 1099511628211;
        return h;
    }
}
