using System.Text.Json;

namespace SharpBlock.Testing;

/// <summary>Walks a query-qmp-schema answer as a client does.</summary>
public static class QmpSchemaJson
{
    /// <summary>Every entity of the answer by its (possibly masked) name.</summary>
    public static Dictionary<string, JsonElement> Index(JsonElement schema)
    {
        var d = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (var e in schema.EnumerateArray())
            d.Add(e.GetProperty("name").GetString()!, e);
        return d;
    }

    /// <summary>The names an entity refers to: argument, return and element types, member, variant and alternative types.</summary>
    public static IEnumerable<string> References(JsonElement e)
    {
        foreach (string member in (string[])["arg-type", "ret-type", "element-type"])
        {
            if (e.TryGetProperty(member, out var t))
                yield return t.GetString()!;
        }

        foreach (string list in (string[])["members", "variants"])
        {
            if (!e.TryGetProperty(list, out var items))
                continue;
            foreach (var m in items.EnumerateArray())
            {
                // Enum members have names only; object members, variants and alternatives have a type.
                if (m.TryGetProperty("type", out var t))
                    yield return t.GetString()!;
            }
        }
    }
}
