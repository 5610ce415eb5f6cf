using System.Text.Json;

namespace SharpBlock.Testing;

/// <summary>QMP messages in a form two servers' answers can be compared in.</summary>
public static class QmpCanonical
{
    /// <summary>A JSON value with object members sorted and timestamps dropped, so member order (QEMU's is a hash order) does not count.</summary>
    public static string Of(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => "{" + string.Join(",", e.EnumerateObject().Where(p => p.Name != "timestamp")
            .OrderBy(p => p.Name, StringComparer.Ordinal).Select(p => JsonSerializer.Serialize(p.Name) + ":" + Of(p.Value))) + "}",
        JsonValueKind.Array => "[" + string.Join(",", e.EnumerateArray().Select(Of)) + "]",
        _ => e.GetRawText(),
    };
}
