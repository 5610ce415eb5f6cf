using System.Globalization;
using System.Text.Json;
using SharpBlock.Options;
using SharpBlock.Qmp.Protocol;

namespace SharpBlock.Qmp.Schema;

/// <summary>
/// The checks the generated readers share, with QEMU's wording for each failure. In keyval mode (the
/// command line's key=value form) every scalar arrives as a string and is converted by the schema type,
/// as QEMU's keyval input visitor does.
/// </summary>
public static class QapiRead
{
    private static readonly JsonDocument EmptyDoc = JsonDocument.Parse("{}");

    public static JsonElement EmptyObject => EmptyDoc.RootElement;

    public static readonly string[] NoNames = [];

    public static readonly string[] SimpleUnionNames = ["type", "data"];

    public static string Path(string parent, string member) => parent.Length == 0 ? member : parent + "." + member;

    public static QmpException Missing(string path) => new($"Parameter '{path}' is missing");

    public static QmpException Unexpected(string path) => new($"Parameter '{path}' is unexpected");

    public static QmpException BadType(string path, string expected) =>
        new($"Invalid parameter type for '{path}', expected: {expected}");

    /// <summary>
    /// An enum value the type does not have. QEMU 7.2 names only the member here, not its path (a list element
    /// has no name, which it prints as null), so a bad tag deep in a transaction reads "Parameter 'type' ...".
    /// </summary>
    public static QmpException BadValue(string path, string value) =>
        new($"Parameter '{MemberName(path)}' does not accept value '{value}'");

    private static string MemberName(string path)
    {
        if (path.EndsWith(']'))
            return "null";
        int dot = path.LastIndexOf('.');
        return dot < 0 ? path : path[(dot + 1)..];
    }

    private static QmpException Expects(string path, string what) => new($"Parameter '{path}' expects {what}");

    public static void RequireObject(JsonElement e, string path)
    {
        if (e.ValueKind != JsonValueKind.Object)
            throw BadType(path.Length == 0 ? "arguments" : path, "object");
    }

    public static void RequireArray(JsonElement e, string path)
    {
        if (e.ValueKind != JsonValueKind.Array)
            throw BadType(path, "array");
    }

    /// <summary>Refuses any member of e that is not one of the known wire names.</summary>
    public static void CheckUnexpected(JsonElement? e, string path, string[] known)
    {
        if (e is not { ValueKind: JsonValueKind.Object } obj)
            return;
        foreach (var p in obj.EnumerateObject())
        {
            if (Array.IndexOf(known, p.Name) < 0)
                throw Unexpected(Path(path, p.Name));
        }
    }

    public static string Str(JsonElement e, string path, bool keyval)
    {
        if (e.ValueKind != JsonValueKind.String)
            throw BadType(path, "string");
        return e.GetString()!;
    }

    public static long Int64(JsonElement e, string path, bool keyval)
    {
        if (e.ValueKind == JsonValueKind.Number && e.TryGetInt64(out long v))
            return v;
        if (keyval && e.ValueKind == JsonValueKind.String)
        {
            if (long.TryParse(e.GetString(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out v))
                return v;
            throw Expects(path, "integer");
        }

        if (e.ValueKind == JsonValueKind.Number)
            throw Expects(path, "int64_t");
        throw BadType(path, "integer");
    }

    public static long Int64Ranged(JsonElement e, string path, bool keyval, long min, long max, string typeName)
    {
        long v = Int64(e, path, keyval);
        if (v < min || v > max)
            throw Expects(path, typeName);
        return v;
    }

    public static ulong UInt64(JsonElement e, string path, bool keyval, ulong max, string typeName)
    {
        ulong v;
        if (e.ValueKind == JsonValueKind.Number)
        {
            if (e.TryGetUInt64(out v))
            {
                if (v > max)
                    throw Expects(path, typeName);
                return v;
            }

            // QEMU accepts negative numbers for unsigned members by wrapping; we refuse them as out of range.
            throw Expects(path, typeName);
        }

        if (keyval && e.ValueKind == JsonValueKind.String)
        {
            if (ulong.TryParse(e.GetString(), NumberStyles.None, CultureInfo.InvariantCulture, out v) && v <= max)
                return v;
            throw Expects(path, "integer");
        }

        throw BadType(path, "integer");
    }

    /// <summary>A byte count; on the command line it may carry a k/M/G/T suffix, as QEMU allows.</summary>
    public static ulong Size(JsonElement e, string path, bool keyval)
    {
        if (keyval && e.ValueKind == JsonValueKind.String)
        {
            if (SizeParser.TryParse(e.GetString()!, out ulong v))
                return v;
            throw Expects(path, "a non-negative number below 2^64");
        }

        return UInt64(e, path, keyval, ulong.MaxValue, "uint64_t");
    }

    public static bool Bool(JsonElement e, string path, bool keyval)
    {
        if (e.ValueKind == JsonValueKind.True)
            return true;
        if (e.ValueKind == JsonValueKind.False)
            return false;
        if (keyval && e.ValueKind == JsonValueKind.String)
        {
            switch (e.GetString())
            {
                case "on" or "yes" or "true" or "y":
                    return true;
                case "off" or "no" or "false" or "n":
                    return false;
                default:
                    throw Expects(path, "'on' or 'off'");
            }
        }

        throw BadType(path, "boolean");
    }

    public static double Number(JsonElement e, string path, bool keyval)
    {
        if (e.ValueKind == JsonValueKind.Number)
            return e.GetDouble();
        if (keyval && e.ValueKind == JsonValueKind.String)
        {
            if (double.TryParse(e.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out double d))
                return d;
            throw Expects(path, "number");
        }

        throw BadType(path, "number");
    }

    /// <summary>A member of type 'any': kept as given, detached from the request's document.</summary>
    public static object Any(JsonElement e) => e.Clone();
}
