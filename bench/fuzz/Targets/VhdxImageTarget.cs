using System.Buffers.Binary;
using SharpBlock.Drivers;
using SharpBlock.Drivers.Format.Vhdx;
using SharpBlock.Drivers.Protocol.Memory;
using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Fuzz.Targets;

/// <summary>
/// A whole vhdx image through the real open path (headers, log search and replay, region table, metadata,
/// BAT), then reads, writes, zero writes, flush, check, close and a read-only reopen of what was left.
/// </summary>
/// <remarks>
/// The smallest vhdx is several MiB of mostly zeros, too big for AFL to mutate well, so the input is a sparse
/// image: a little-endian u32 file length, then records of (u32 offset, u16 length, bytes) laid over zeros.
/// <see cref="Encode"/> turns an image into that form (seeds); records past the length are clipped.
/// </remarks>
public static class VhdxImageTarget
{
    /// <summary>The largest file an input may describe: enough for every seed, small enough to run many cases.</summary>
    public const int MaxFileLength = 24 << 20;

    /// <summary>Room for writes to grow the image; a BAT entry far past that fails with ENOSPC.</summary>
    private const long Headroom = 16L << 20;

    private const long ReadSpan = 4L << 20;

    public static Task RunAsync(byte[] input, FuzzContext context) => RunAndReportAsync(input, context);

    /// <summary>Runs one input; true when some open accepted the image (the replay test counts both outcomes).</summary>
    public static async Task<bool> RunAndReportAsync(byte[] input, FuzzContext context)
    {
        byte[] image = Decode(input);
        var file = context.Memory(image, NodeSettings.Default, "fuzz.vhdx", image.Length + Headroom);
        await using (file.ConfigureAwait(false))
        {
            var node = await OpenAsync(file, readOnly: false).ConfigureAwait(false) ?? await OpenAsync(file, readOnly: true).ConfigureAwait(false);
            if (node == null)
                return false;
            await using (node.ConfigureAwait(false))
                await ExerciseAsync(node, input.Length).ConfigureAwait(false);

            var after = context.Memory(file.ToArray(), NodeSettings.Default with { ReadOnly = true }, "fuzz.vhdx", MemoryNode.DefaultMaxLength);
            await using (after.ConfigureAwait(false))
            {
                var again = await OpenAsync(after, readOnly: true).ConfigureAwait(false);
                if (again != null)
                {
                    await using (again.ConfigureAwait(false))
                        await Step(async () => await again.CheckAsync(ImageCheckMode.None, null).ConfigureAwait(false)).ConfigureAwait(false);
                }
            }

            return true;
        }
    }

    private static async Task<VhdxNode?> OpenAsync(BlockNode file, bool readOnly)
    {
        try
        {
            return await VhdxNode.OpenAsync(file, NodeSettings.Default with { ReadOnly = readOnly }).ConfigureAwait(false);
        }
        catch (BlockException)
        {
            return null;
        }
    }

    private static async Task ExerciseAsync(VhdxNode node, int h)
    {
        long span = Math.Min(node.Length, ReadSpan);
        byte[] buf = new byte[256 << 10];
        for (long off = 0; off < span; off += buf.Length)
        {
            int n = (int)Math.Min(buf.Length, span - off);
            await Step(() => node.ReadAsync(off, buf.AsMemory(0, n))).ConfigureAwait(false);
        }

        if (node.Length > 0)
            await Step(() => node.ReadAsync(node.Length - 512, buf.AsMemory(0, (int)Math.Min(512, node.Length)))).ConfigureAwait(false);
        await Step(async () => await node.GetImageInfoAsync().ConfigureAwait(false)).ConfigureAwait(false);
        if (!node.ReadOnly && span > 0)
        {
            byte[] data = new byte[1 + (h % 70_000)];
            Array.Fill(data, (byte)h);
            long at = (long)((uint)(h * 2654435761u) % (ulong)span);
            int len = (int)Math.Min(data.Length, span - at);
            await Step(() => node.WriteAsync(at, data.AsMemory(0, len))).ConfigureAwait(false);
            await Step(() => node.WriteZeroesAsync(at / 2, Math.Min(100_000, span - (at / 2)))).ConfigureAwait(false);
            await Step(() => node.ReadAsync(at, buf.AsMemory(0, Math.Min(len, buf.Length)))).ConfigureAwait(false);
            await Step(() => node.FlushAsync()).ConfigureAwait(false);
        }

        await Step(async () => await node.CheckAsync(ImageCheckMode.None, null).ConfigureAwait(false)).ConfigureAwait(false);
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

    /// <summary>The sparse form of an image: its length, then its non-zero 512-byte runs (at most 32 KiB a record).</summary>
    public static byte[] Encode(ReadOnlySpan<byte> image)
    {
        var o = new List<byte>(4096);
        Span<byte> tmp = stackalloc byte[6];
        BinaryPrimitives.WriteUInt32LittleEndian(tmp, (uint)image.Length);
        o.AddRange(tmp[..4]);
        const int chunk = 512;
        for (int at = 0; at < image.Length;)
        {
            if (!image.Slice(at, Math.Min(chunk, image.Length - at)).ContainsAnyExcept((byte)0))
            {
                at += chunk;
                continue;
            }

            int end = at;
            while (end < image.Length && end - at < 32768 && image.Slice(end, Math.Min(chunk, image.Length - end)).ContainsAnyExcept((byte)0))
                end = Math.Min(image.Length, end + chunk);
            BinaryPrimitives.WriteUInt32LittleEndian(tmp, (uint)at);
            BinaryPrimitives.WriteUInt16LittleEndian(tmp[4..], (ushort)(end - at));
            o.AddRange(tmp);
            o.AddRange(image[at..end]);
            at = end;
        }

        return [.. o];
    }

    public static byte[] Decode(ReadOnlySpan<byte> input)
    {
        if (input.Length < 4)
            return [];
        int length = (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(input), MaxFileLength);
        byte[] image = new byte[length];
        for (int p = 4; p + 6 <= input.Length;)
        {
            long at = BinaryPrimitives.ReadUInt32LittleEndian(input[p..]);
            int n = BinaryPrimitives.ReadUInt16LittleEndian(input[(p + 4)..]);
            p += 6;
            n = Math.Min(n, input.Length - p);
            if (at < length)
                input.Slice(p, (int)Math.Min(n, length - at)).CopyTo(image.AsSpan((int)at));
            p += n;
        }

        return image;
    }
}
