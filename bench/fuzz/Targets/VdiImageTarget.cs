using SharpBlock.Drivers;
using SharpBlock.Drivers.Format.Vdi;
using SharpBlock.Drivers.Protocol.Memory;
using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Fuzz.Targets;

/// <summary>
/// A whole VDI image in memory through the real open path (header, block map), then what walks the map:
/// reads, block status, an allocating and an in-place write, zeroes, flush (which writes the map back),
/// check, close, and a read-only reopen and check of what the writes left. Any step may fail with a
/// BlockException; each is tried regardless.
/// </summary>
public static class VdiImageTarget
{
    /// <summary>Room for a few new 1 MiB blocks; a map or count that points far past that fails with ENOSPC.</summary>
    private const long Headroom = 4L << 20;

    private const long ReadSpan = 3L << 20;

    public static async Task RunAsync(byte[] image, FuzzContext context)
    {
        var file = context.Memory(image, NodeSettings.Default, "fuzz.vdi", image.Length + Headroom);
        await using (file.ConfigureAwait(false))
        {
            var node = await OpenAsync(file, readOnly: false).ConfigureAwait(false) ?? await OpenAsync(file, readOnly: true).ConfigureAwait(false);
            if (node == null)
                return;
            await using (node.ConfigureAwait(false))
                await ExerciseAsync(node, FuzzSteps.Hash(image)).ConfigureAwait(false);

            var after = context.Memory(file.ToArray(), NodeSettings.Default with { ReadOnly = true }, "fuzz.vdi", MemoryNode.DefaultMaxLength);
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

    internal static async Task<VdiNode?> OpenAsync(BlockNode file, bool readOnly)
    {
        try
        {
            return await VdiNode.OpenAsync(file, NodeSettings.Default with { ReadOnly = readOnly }).ConfigureAwait(false);
        }
        catch (BlockException)
        {
            return null;
        }
    }

    private static async Task ExerciseAsync(VdiNode node, ulong h)
    {
        await FuzzSteps.ReadAndMapAsync(node, ReadSpan).ConfigureAwait(false);
        await FuzzSteps.WriteAsync(node, ReadSpan, h).ConfigureAwait(false);
        await FuzzSteps.Step(() => node.CheckAsync(ImageCheckMode.None, null)).ConfigureAwait(false);
        await FuzzSteps.Step(() => node.GetImageInfoAsync()).ConfigureAwait(false);
    }
}

/// <summary>The steps the simple-format image targets share: read, map, write a little, each failure typed.</summary>
internal static class FuzzSteps
{
    public static async Task ReadAndMapAsync(BlockNode node, long readSpan)
    {
        long span = Math.Min(node.Length, readSpan);
        byte[] buf = new byte[64 << 10];
        for (long off = 0; off < span; off += buf.Length)
        {
            int n = (int)Math.Min(buf.Length, span - off);
            await Step(() => node.ReadAsync(off, buf.AsMemory(0, n))).ConfigureAwait(false);
        }

        long pos = 0;
        for (int i = 0; i < 64 && pos < node.Length; i++)
        {
            try
            {
                var st = await node.GetBlockStatusAsync(pos, node.Length - pos).ConfigureAwait(false);
                if (st.Length <= 0)
                    throw new FuzzAssertionException($"block status at {pos} returned a length of {st.Length}");
                pos += st.Length;
            }
            catch (BlockException)
            {
                break;
            }
        }
    }

    public static async Task WriteAsync(BlockNode node, long readSpan, ulong h)
    {
        long span = Math.Min(node.Length, readSpan);
        if (node.ReadOnly || span <= 0)
            return;
        byte[] data = new byte[1 + (int)(h % 3000)];
        Array.Fill(data, (byte)(h >> 8));
        long at = (long)((h >> 16) % (ulong)span);
        int len = (int)Math.Min(data.Length, span - at);
        await Step(() => node.WriteAsync(at, data.AsMemory(0, len))).ConfigureAwait(false);
        long z = (long)((h >> 32) % (ulong)span);
        await Step(() => node.WriteZeroesAsync(z, Math.Min(4096, span - z))).ConfigureAwait(false);
        await Step(() => node.WriteAsync(at, data.AsMemory(0, len))).ConfigureAwait(false);
        byte[] back = new byte[len];
        await Step(() => node.ReadAsync(at, back)).ConfigureAwait(false);
        await Step(() => node.FlushAsync()).ConfigureAwait(false);
    }

    public static async Task Step(Func<ValueTask> op)
    {
        try
        {
            await op().ConfigureAwait(false);
        }
        catch (BlockException)
        {
        }
    }

    public static async Task Step<T>(Func<ValueTask<T>> op)
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
    public static ulong Hash(byte[] b)
    {
        ulong h = 14695981039346656037;
        foreach (byte x in b)
            h = (h ^ x) * 1099511628211;
        return h;
    }
}
