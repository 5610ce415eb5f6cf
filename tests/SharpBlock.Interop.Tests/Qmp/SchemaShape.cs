using System.Text.Json;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Qmp;

/// <summary>
/// Compares two query-qmp-schema answers by shape, since masked type names differ between servers: starting
/// at each command and event both serve, every member, variant, enum value and alternative of ours must exist
/// in theirs with the same optionality and the same kind of type. Each departure is one line in the result.
/// </summary>
internal sealed class SchemaShape
{
    private readonly Dictionary<string, JsonElement> _ours;
    private readonly Dictionary<string, JsonElement> _theirs;
    private readonly HashSet<(string, string)> _compared = [];
    private readonly List<string> _differences = [];

    private SchemaShape(JsonElement ours, JsonElement theirs)
    {
        _ours = QmpSchemaJson.Index(ours);
        _theirs = QmpSchemaJson.Index(theirs);
    }

    /// <summary>The departures of ours from theirs, and the commands and events only we serve.</summary>
    public static (List<string> Differences, List<string> OnlyOurs) Compare(JsonElement ours, JsonElement theirs)
    {
        var s = new SchemaShape(ours, theirs);
        var onlyOurs = new List<string>();
        foreach (var e in ours.EnumerateArray())
        {
            string meta = e.GetProperty("meta-type").GetString()!;
            if (meta is not ("command" or "event"))
                continue;
            string name = e.GetProperty("name").GetString()!;
            if (!s._theirs.TryGetValue(name, out var t))
            {
                onlyOurs.Add(name);
                continue;
            }

            s.Type(e.GetProperty("arg-type").GetString()!, t.GetProperty("arg-type").GetString()!, name + "(arg)");
            if (meta == "command")
                s.Type(e.GetProperty("ret-type").GetString()!, t.GetProperty("ret-type").GetString()!, name + "(ret)");
        }

        return (s._differences, onlyOurs);
    }

    private static string Str(JsonElement e, string member) => e.GetProperty(member).GetString()!;

    private static string? OptStr(JsonElement e, string member) => e.TryGetProperty(member, out var v) ? v.GetString() : null;

    private void Type(string a, string b, string path)
    {
        if (!_compared.Add((a, b)))
            return;
        var ea = _ours[a];
        var eb = _theirs[b];
        string meta = Str(ea, "meta-type");
        if (meta != Str(eb, "meta-type"))
        {
            _differences.Add($"{path}: {meta} here, {Str(eb, "meta-type")} in 7.2");
            return;
        }

        switch (meta)
        {
            case "builtin":
                if (a != b)
                    _differences.Add($"{path}: {a} here, {b} in 7.2");
                break;
            case "array":
                Type(Str(ea, "element-type"), Str(eb, "element-type"), path + "[]");
                break;
            case "enum":
                var theirValues = new HashSet<string>();
                foreach (var v in eb.GetProperty("values").EnumerateArray())
                    theirValues.Add(v.GetString()!);
                foreach (var v in ea.GetProperty("values").EnumerateArray())
                {
                    if (!theirValues.Contains(v.GetString()!))
                        _differences.Add($"{path}: value '{v.GetString()}' not in 7.2");
                }

                break;
            case "alternate":
                var am = ea.GetProperty("members").EnumerateArray().ToList();
                var bm = eb.GetProperty("members").EnumerateArray().ToList();
                if (am.Count != bm.Count)
                    _differences.Add($"{path}: {am.Count} alternatives here, {bm.Count} in 7.2");
                for (int i = 0; i < Math.Min(am.Count, bm.Count); i++)
                    Type(Str(am[i], "type"), Str(bm[i], "type"), path + "|" + i);
                break;
            default:
                Object(ea, eb, path);
                break;
        }
    }

    private void Object(JsonElement ea, JsonElement eb, string path)
    {
        var theirMembers = new Dictionary<string, JsonElement>();
        foreach (var m in eb.GetProperty("members").EnumerateArray())
            theirMembers.Add(Str(m, "name"), m);
        foreach (var m in ea.GetProperty("members").EnumerateArray())
        {
            string name = Str(m, "name");
            if (!theirMembers.TryGetValue(name, out var n))
            {
                _differences.Add($"{path}.{name}: not in 7.2");
                continue;
            }

            bool optional = m.TryGetProperty("default", out _), theirOptional = n.TryGetProperty("default", out _);
            if (optional != theirOptional)
                _differences.Add($"{path}.{name}: {(optional ? "optional" : "mandatory")} here, {(theirOptional ? "optional" : "mandatory")} in 7.2");
            Type(Str(m, "type"), Str(n, "type"), path + "." + name);
        }

        if (OptStr(ea, "tag") != OptStr(eb, "tag"))
            _differences.Add($"{path}: tag {OptStr(ea, "tag") ?? "none"} here, {OptStr(eb, "tag") ?? "none"} in 7.2");
        if (!ea.TryGetProperty("variants", out var av) || !eb.TryGetProperty("variants", out var bv))
            return;
        var theirVariants = new Dictionary<string, string>();
        foreach (var v in bv.EnumerateArray())
            theirVariants.Add(Str(v, "case"), Str(v, "type"));
        foreach (var v in av.EnumerateArray())
        {
            string c = Str(v, "case");
            if (theirVariants.TryGetValue(c, out string? t))
                Type(Str(v, "type"), t, path + "{" + c + "}");
            else
                _differences.Add($"{path}: variant '{c}' not in 7.2");
        }
    }
}
