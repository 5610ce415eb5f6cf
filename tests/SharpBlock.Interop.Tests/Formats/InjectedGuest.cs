using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Formats;

/// <summary>
/// A guest of the error-injection matrices: it writes patterned ranges, flushes, and remembers which writes a
/// successful flush made durable, so the judge can ask qemu-io to read back exactly what was acknowledged.
/// Requests that the injected errors fail are counted, never thrown.
/// </summary>
internal sealed class InjectedGuest(BlockNode node)
{
    /// <summary>One guest write: its own range, its own byte, and whether a flush after it succeeded.</summary>
    public sealed record Write(long Offset, int Length, byte Pattern)
    {
        public bool Durable { get; set; }
    }

    private readonly List<Write> _pending = [];
    private byte _pattern;

    public BlockNode Node { get; set; } = node;

    public List<Write> Writes { get; } = [];

    public int Failures { get; set; }

    public async Task<bool> TryAsync(Func<ValueTask> op)
    {
        try
        {
            await op();
            return true;
        }
        catch (BlockException)
        {
            Failures++;
            return false;
        }
    }

    public async Task FlushAsync()
    {
        if (await TryAsync(() => Node.FlushAsync()))
        {
            foreach (var w in _pending)
                w.Durable = true;
            _pending.Clear();
        }
    }

    public async Task WriteAsync(long offset, int length)
    {
        var w = new Write(offset, length, ++_pattern);
        Writes.Add(w);
        var data = new byte[length];
        Array.Fill(data, w.Pattern);
        if (await TryAsync(() => Node.WriteAsync(offset, data)))
            _pending.Add(w);
    }

    public Task ReadAsync(long offset, int length) => TryAsync(() => Node.ReadAsync(offset, new byte[length]));

    /// <summary>Writes no flush acknowledged may or may not have survived a close: a new session cannot vouch for them.</summary>
    public void ForgetUnflushed() => _pending.Clear();

    /// <summary>Null when qemu-img finds no corruption (if it can check the format) and every durable write reads back.</summary>
    public static async Task<string?> JudgeAsync(string format, string image, IReadOnlyList<Write> writes, bool check = true)
    {
        if (check)
        {
            var result = await Tools.RunAsync("qemu-img", "check", "-f", format, image);
            // 0: clean; 3: leaked clusters only. 2 is corruption, 1 a check that could not run.
            if (result.ExitCode is not (0 or 3))
                return $"qemu-img check exit {result.ExitCode}: {result.Stdout}{result.Stderr}";
        }

        // A later write over part of an earlier one leaves that part uncertain unless durable too.
        var args = new List<string> { "-r", "-f", format };
        foreach (var w in writes)
        {
            if (!w.Durable)
                continue;
            long start = w.Offset, end = w.Offset + w.Length;
            foreach (var later in writes)
            {
                if (later.Pattern > w.Pattern && later.Offset < end && w.Offset < later.Offset + later.Length)
                    end = Math.Min(end, later.Offset);
            }

            if (end > start)
                args.AddRange(["-c", $"read -q -P {w.Pattern} {start} {end - start}"]);
        }

        if (args.Count == 3)
            return null;
        args.Add(image);
        var read = await Tools.RunAsync("qemu-io", args);
        string all = read.Stdout + read.Stderr;
        if (read.ExitCode != 0 || all.Contains("failed", StringComparison.OrdinalIgnoreCase) || all.Contains("error", StringComparison.OrdinalIgnoreCase))
            return $"acknowledged data differs: {all}";
        return null;
    }
}
