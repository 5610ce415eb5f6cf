using System.Diagnostics;
using System.Text;
using SharpBlock.Drivers;
using SharpBlock.Drivers.Format.Qcow2;
using SharpBlock.Drivers.Protocol.Memory;
using SharpBlock.Errors;
using SharpBlock.Fuzz.Targets;
using SharpBlock.Graph;

namespace SharpBlock.Fuzz.Soak;

/// <summary>
/// Mutated qcow2 images through open, write, read-back, flush, close, reopen and read-back again. The
/// property is the one a guest relies on: a write that returned success reads back as written, in the
/// same open and after a reopen, unless the driver marked the image corrupt or refused to open it with a
/// typed error. Every exception of another type is a crash and every image over the bound a hang; all
/// three kinds of finding are saved with the operations that led to them.
/// </summary>
public sealed class Qcow2Soak(IReadOnlyList<byte[]> seeds, string findings, TimeSpan bound)
{
    private const int Writes = 3;
    private const long Span = 64 << 10;

    public Qcow2SoakCounts Counts { get; } = new();

    public void Run(int images, int firstCase, TextWriter log)
    {
        Directory.CreateDirectory(findings);
        var clock = Stopwatch.StartNew();
        for (int i = firstCase; i < firstCase + images; i++)
        {
            var rng = new Random(i);
            byte[] image = Mutator.Mutate(seeds[i % seeds.Count], rng, headerBytes: 512, resize: false);
            var trace = new StringBuilder().AppendLine($"case {i}: seed {i % seeds.Count}, {image.Length} bytes");
            Counts.Images++;
            var context = new FuzzContext();
            var task = Task.Run(() => OneAsync(i, image, rng, trace, context));
            Exception? failure = null;
            try
            {
                if (!task.Wait(bound))
                {
                    context.Abandon();
                    Counts.Hangs++;
                    Save(i, "hang", image, trace.AppendLine($"still running after {bound.TotalSeconds} s"));
                    continue;
                }
            }
            catch (AggregateException ex)
            {
                failure = ex.InnerException;
            }

            if (failure != null)
            {
                Counts.Crashes++;
                Save(i, "crash-" + failure.GetType().Name, image, trace.AppendLine(failure.ToString()));
            }

            if ((i - firstCase + 1) % 1000 == 0)
                log.WriteLine($"{i - firstCase + 1} images, {clock.Elapsed.TotalSeconds:0} s");
        }
    }

    private async Task OneAsync(int i, byte[] image, Random rng, StringBuilder trace, FuzzContext context)
    {
        bool damaged = await PreDamagedAsync(image, context).ConfigureAwait(false);
        if (damaged)
            Interlocked.Increment(ref Counts.PreDamaged);
        trace.AppendLine($"check before writing: {(damaged ? "damaged" : "clean")}");

        var file = context.Memory(image, NodeSettings.Default, "soak.qcow2", image.Length + (8L << 20));
        var acked = new List<(long Offset, byte[] Data)>();
        bool corrupt;
        bool flushFailed = false;
        await using (file.ConfigureAwait(false))
        {
            Qcow2Node node;
            try
            {
                node = await Qcow2Node.OpenAsync(file, NodeSettings.Default).ConfigureAwait(false);
            }
            catch (BlockException ex)
            {
                Counts.OpenFailedTyped++;
                trace.AppendLine("open: " + ex.Message);
                return;
            }

            await using (node.ConfigureAwait(false))
            {
                long span = Math.Min(node.Length, Span);
                if (span < Writes)
                {
                    Counts.NoGuestSpace++;
                    return;
                }

                Counts.Exercised++;
                long third = span / Writes;
                for (int k = 0; k < Writes; k++)
                {
                    long off = (k * third) + rng.NextInt64(third);
                    int len = (int)Math.Min(1 + rng.Next(2 * node.ClusterSize), (k + 1) * third - off);
                    byte[] data = Pattern(k, len);
                    try
                    {
                        await node.WriteAsync(off, data).ConfigureAwait(false);
                        acked.Add((off, data));
                        Counts.WritesAcknowledged++;
                        trace.AppendLine($"write 0x{off:x} +{len} pattern {k}: ok");
                    }
                    catch (BlockException ex)
                    {
                        Counts.WritesFailedTyped++;
                        trace.AppendLine($"write 0x{off:x} +{len} pattern {k}: {ex.Message}");
                    }
                }

                int lost = await LostAsync(node, acked, trace, "same open").ConfigureAwait(false);
                corrupt = node.IsCorrupt;
                if (lost > 0 && !corrupt)
                {
                    Counts.LostSameOpen += lost;
                    if (!damaged)
                        Counts.LostOnCheckCleanImage += lost;
                    Save(i, "lost-same-open", image, trace);
                }

                try
                {
                    await node.FlushAsync().ConfigureAwait(false);
                }
                catch (BlockException ex)
                {
                    // A failed flush tells the writer its writes are not durable: they may be gone after a reopen.
                    flushFailed = true;
                    trace.AppendLine("flush: " + ex.Message);
                    Counts.NoteFlushFailure(ex.Message);
                }
            }
        }

        byte[] written = file.ToArray();
        var reopened = context.Memory(written, NodeSettings.Default with { ReadOnly = true }, "soak.qcow2", MemoryNode.DefaultMaxLength);
        await using (reopened.ConfigureAwait(false))
        {
            Qcow2Node again;
            try
            {
                again = await Qcow2Node.OpenAsync(reopened, NodeSettings.Default with { ReadOnly = true }).ConfigureAwait(false);
            }
            catch (BlockException ex)
            {
                Counts.ReopenFailedTyped++;
                trace.AppendLine("reopen: " + ex.Message);
                return;
            }

            await using (again.ConfigureAwait(false))
            {
                if (corrupt || again.IsCorrupt)
                {
                    Counts.MarkedCorrupt++;
                    return;
                }

                if (flushFailed)
                {
                    Counts.FlushFailedTyped++;
                    return;
                }

                int lost = await LostAsync(again, acked, trace, "after reopen").ConfigureAwait(false);
                if (lost > 0)
                {
                    Counts.LostAfterReopen += lost;
                    if (!damaged)
                        Counts.LostOnCheckCleanImage += lost;
                    Save(i, "lost-after-reopen", image, trace, written);
                }
            }
        }
    }

    /// <summary>Whether the mutated image was already inconsistent: a lost write there may be the damage, not the driver.</summary>
    private static async Task<bool> PreDamagedAsync(byte[] image, FuzzContext context)
    {
        var file = context.Memory(image, NodeSettings.Default with { ReadOnly = true }, "soak.qcow2", MemoryNode.DefaultMaxLength);
        await using (file.ConfigureAwait(false))
        {
            var node = await Qcow2ImageTarget.OpenAsync(file, readOnly: true).ConfigureAwait(false);
            if (node == null)
                return true;
            await using (node.ConfigureAwait(false))
            {
                try
                {
                    var r = await node.CheckAsync(ImageCheckMode.None, null).ConfigureAwait(false);
                    return r.Corruptions > 0 || r.CheckErrors > 0;
                }
                catch (BlockException)
                {
                    return true;
                }
            }
        }
    }

    private static async Task<int> LostAsync(Qcow2Node node, List<(long Offset, byte[] Data)> acked, StringBuilder trace, string when)
    {
        int lost = 0;
        foreach (var (off, data) in acked)
        {
            byte[] back = new byte[data.Length];
            try
            {
                await node.ReadAsync(off, back).ConfigureAwait(false);
            }
            catch (BlockException ex)
            {
                trace.AppendLine($"read back 0x{off:x} +{data.Length} {when}: {ex.Message}");
                lost++;
                continue;
            }

            int diff = back.AsSpan().CommonPrefixLength(data);
            if (diff < data.Length)
            {
                trace.AppendLine($"read back 0x{off:x} +{data.Length} {when}: differs from byte {diff} (0x{back[diff]:x2}, wrote 0x{data[diff]:x2})");
                lost++;
            }
        }

        return lost;
    }

    /// <summary>A pattern that names its write and its position, so a misplaced copy is recognisable in a dump.</summary>
    private static byte[] Pattern(int k, int len)
    {
        byte[] b = new byte[len];
        for (int i = 0; i < len; i++)
            b[i] = (byte)(((k + 1) << 5) ^ (i & 0x1f) ^ 0x80);
        return b;
    }

    private void Save(int i, string kind, byte[] image, StringBuilder trace, byte[]? after = null)
    {
        string stem = Path.Combine(findings, $"soak-{i:D5}-{kind}");
        File.WriteAllBytes(stem + ".qcow2", image);
        if (after != null)
            File.WriteAllBytes(stem + ".after.qcow2", after);
        File.WriteAllText(stem + ".txt", trace.ToString());
    }
}
