using System.Buffers.Binary;

namespace SharpBlock.Fuzz;

/// <summary>
/// Deterministic mutations for the drivers without AFL (the test suite's replay, the soak run): the same
/// seed and Random give the same input, so a failure names its case by two numbers. The edits are AFL's
/// cheap ones plus the two that matter most for on-disk formats: a big-endian boundary value over a field,
/// and a copy of eight bytes from elsewhere (a table entry that now points at another table).
/// </summary>
public static class Mutator
{
    private static readonly ulong[] Interesting =
    [
        0, 1, 0x7f, 0x80, 0xff, 0x100, 0x200, 0x1ff, 0x1000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff,
        0x100000000, 0x7fffffffffffffff, 0x8000000000000000, 0xffffffffffffffff, 0x00fffffffffffe00,
    ];

    /// <param name="seed">The input to start from; it is not changed.</param>
    /// <param name="rng">The only source of choices, so (seed, rng seed) names the result.</param>
    /// <param name="headerBytes">Edits favour this many leading bytes (a header); 0 spreads them evenly.</param>
    /// <param name="resize">Whether edits may insert and delete bytes (streams) or only overwrite (images).</param>
    public static byte[] Mutate(byte[] seed, Random rng, int headerBytes = 0, bool resize = true)
    {
        var b = new List<byte>(seed);
        if (b.Count == 0)
            b.Add(0);
        int edits = rng.Next(1, 9);
        for (int e = 0; e < edits; e++)
        {
            int span = headerBytes > 0 && rng.Next(2) == 0 ? Math.Min(headerBytes, b.Count) : b.Count;
            int at = rng.Next(span);
            switch (rng.Next(resize ? 7 : 5))
            {
                case 0:
                    b[at] ^= (byte)(1 << rng.Next(8));
                    break;
                case 1:
                    b[at] = (byte)rng.Next(256);
                    break;
                case 2:
                    Overwrite(b, at & ~7, Value(rng), 8);
                    break;
                case 3:
                    Overwrite(b, at & ~3, Value(rng), 4);
                    break;
                case 4:
                    int from = rng.Next(b.Count) & ~7;
                    for (int i = 0; i < 8 && from + i < b.Count && (at & ~7) + i < b.Count; i++)
                        b[(at & ~7) + i] = b[from + i];
                    break;
                case 5:
                    b.RemoveRange(at, Math.Min(rng.Next(1, 32), b.Count - at));
                    if (b.Count == 0)
                        b.Add(0);
                    break;
                default:
                    int n = rng.Next(1, 32);
                    for (int i = 0; i < n; i++)
                        b.Insert(at, (byte)rng.Next(256));
                    break;
            }
        }

        return [.. b];
    }

    private static ulong Value(Random rng)
    {
        ulong v = Interesting[rng.Next(Interesting.Length)];
        return rng.Next(4) == 0 ? v + (ulong)rng.Next(-2, 3) : v;
    }

    private static void Overwrite(List<byte> b, int at, ulong value, int width)
    {
        Span<byte> w = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(w, value);
        for (int i = 0; i < width && at + i < b.Count; i++)
            b[at + i] = w[8 - width + i];
    }
}
