using System.Text.Json;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Bitmaps;

/// <summary>
/// What the bitmap parity tests compare between qemu-storage-daemon and us: replies in one canonical JSON
/// form (members sorted), and every node's dirty-bitmaps as query-named-block-nodes reports them.
/// </summary>
internal static class QmpTranscript
{
    /// <summary>Runs "command {arguments}" and gives the line and its canonical reply.</summary>
    public static async Task<string> RunAsync(QmpTestClient c, string line)
    {
        int sp = line.IndexOf(' ');
        string cmd = sp < 0 ? line : line[..sp];
        return line + " -> " + Canonical(await c.ExecuteAsync(cmd, sp < 0 ? null : line[(sp + 1)..]));
    }

    /// <summary>Every node's dirty-bitmaps (by node name, sorted).</summary>
    public static async Task<string> BitmapsAsync(QmpTestClient c)
    {
        var nodes = await c.ReturnAsync("query-named-block-nodes");
        var lines = new List<string>();
        foreach (var n in nodes.EnumerateArray())
        {
            if (n.TryGetProperty("dirty-bitmaps", out var b))
                lines.Add(n.GetProperty("node-name").GetString() + ": " + Canonical(b));
        }

        lines.Sort(StringComparer.Ordinal);
        return string.Join("\n", lines);
    }

    public static string Canonical(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => "{" + string.Join(",", e.EnumerateObject()
            .OrderBy(p => p.Name, StringComparer.Ordinal).Select(p => JsonSerializer.Serialize(p.Name) + ":" + Canonical(p.Value))) + "}",
        JsonValueKind.Array => "[" + string.Join(",", e.EnumerateArray().Select(Canonical)) + "]",
        _ => e.GetRawText(),
    };
}
