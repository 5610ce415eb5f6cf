using System.Text.Json;
using SharpBlock.Schema;

namespace SharpBlock.Qmp.Schema;

/// <summary>
/// query-qmp-schema's answer, built as QEMU builds it: the served commands and every event, in schema order,
/// then each type they reach, in order of first use. Type names are masked as numbers in that same order
/// (clients are meant to follow commands and events, not to depend on type names), integer types of every
/// width show as 'int', and a member that may be left out carries "default": null. Only commands with a
/// handler are listed, and only the types they reach, so the answer and query-commands agree by construction.
/// </summary>
internal sealed class SchemaIntrospection
{
    private static readonly Dictionary<string, SchemaEntity> Types = IndexTypes();

    // A boxed JSON null: the writer emits it, where a C# null member would be left out.
    private static readonly object NullDefault = JsonDocument.Parse("null").RootElement.Clone();

    private readonly List<string> _used = [];
    private readonly HashSet<string> _seen = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _masked = new(StringComparer.Ordinal);
    private readonly List<SchemaInfo> _result = [];

    private SchemaIntrospection()
    {
    }

    public static List<SchemaInfo> Describe(IEnumerable<string> servedCommands)
    {
        var served = new HashSet<string>(servedCommands, StringComparer.Ordinal);
        var walk = new SchemaIntrospection();
        foreach (var e in QapiIntrospection.Entities)
        {
            if (e.Kind == SchemaEntityKind.Command && served.Contains(e.Name))
            {
                string arg = walk.Use(e.ArgType ?? "q_empty");
                string ret = walk.Use(e.ReturnType ?? "q_empty");
                walk._result.Add(new SchemaInfo
                {
                    Name = e.Name,
                    MetaType = SchemaMetaType.Command,
                    Command = new SchemaInfoCommand { ArgType = arg, RetType = ret },
                });
            }
            else if (e.Kind == SchemaEntityKind.Event)
            {
                walk._result.Add(new SchemaInfo
                {
                    Name = e.Name,
                    MetaType = SchemaMetaType.Event,
                    Event = new SchemaInfoEvent { ArgType = walk.Use(e.ArgType ?? "q_empty") },
                });
            }
        }

        // Describing a type may use new ones; they join the end of the list and are described in turn.
        for (int i = 0; i < walk._used.Count; i++)
            walk._result.Add(walk.DescribeType(walk._used[i]));
        return walk._result;
    }

    private static Dictionary<string, SchemaEntity> IndexTypes()
    {
        var types = new Dictionary<string, SchemaEntity>(StringComparer.Ordinal);
        foreach (var e in QapiIntrospection.Entities)
        {
            if (e.Kind is not (SchemaEntityKind.Command or SchemaEntityKind.Event))
                types.Add(e.Name, e);
        }

        return types;
    }

    /// <summary>The builtin a schema scalar shows as, with its JSON kind; null for a defined type.</summary>
    private static (string Name, JSONType Json)? Builtin(string type) => type switch
    {
        "str" => ("str", JSONType.String),
        "int" or "int8" or "int16" or "int32" or "int64" or "uint8" or "uint16" or "uint32" or "uint64" or "size" => ("int", JSONType.Int),
        "bool" => ("bool", JSONType.Boolean),
        "number" => ("number", JSONType.Number),
        "any" => ("any", JSONType.Value),
        "null" => ("null", JSONType.Null),
        _ => null,
    };

    private static bool IsList(string type) => type.Length > 2 && type[0] == '[';

    private static string Element(string list) => list[1..^1];

    /// <summary>The key a type is listed under: builtins by the name they show as, lists by their element's key.</summary>
    private static string Key(string type)
    {
        if (IsList(type))
            return "[" + Key(Element(type)) + "]";
        return Builtin(type)?.Name ?? type;
    }

    /// <summary>Marks a type used (described later, once) and answers the name it shows as.</summary>
    private string Use(string type)
    {
        string key = Key(type);
        if (_seen.Add(key))
            _used.Add(key);
        if (IsList(key))
            return "[" + Use(Element(key)) + "]";
        if (Builtin(key) != null)
            return key;
        return Mask(key);
    }

    private string Mask(string name)
    {
        if (!_masked.TryGetValue(name, out string? masked))
        {
            masked = _masked.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
            _masked.Add(name, masked);
        }

        return masked;
    }

    private SchemaInfo DescribeType(string key)
    {
        if (Builtin(key) is { } b)
            return new SchemaInfo { Name = b.Name, MetaType = SchemaMetaType.Builtin, Builtin = new SchemaInfoBuiltin { JsonType = b.Json } };
        if (IsList(key))
        {
            string element = Use(Element(key));
            return new SchemaInfo
            {
                Name = "[" + element + "]",
                MetaType = SchemaMetaType.Array,
                Array = new SchemaInfoArray { ElementType = element },
            };
        }

        var e = Types[key];
        switch (e.Kind)
        {
            case SchemaEntityKind.Enum:
                var values = new List<SchemaInfoEnumMember>(e.Values.Length);
                foreach (string v in e.Values)
                    values.Add(new SchemaInfoEnumMember { Name = v });
                return new SchemaInfo
                {
                    Name = Mask(key),
                    MetaType = SchemaMetaType.Enum,
                    Enum = new SchemaInfoEnum { Members = values, Values = [.. e.Values] },
                };
            case SchemaEntityKind.Alternate:
                var alternatives = new List<SchemaInfoAlternateMember>(e.Alternatives.Length);
                foreach (string t in e.Alternatives)
                    alternatives.Add(new SchemaInfoAlternateMember { Type = Use(t) });
                return new SchemaInfo
                {
                    Name = Mask(key),
                    MetaType = SchemaMetaType.Alternate,
                    Alternate = new SchemaInfoAlternate { Members = alternatives },
                };
            default:
                var members = new List<SchemaInfoObjectMember>(e.Members.Length);
                foreach (var m in e.Members)
                    members.Add(new SchemaInfoObjectMember { Name = m.Name, Type = Use(m.Type), Default = m.Optional ? NullDefault : null });
                List<SchemaInfoObjectVariant>? variants = null;
                if (e.Tag != null)
                {
                    variants = new List<SchemaInfoObjectVariant>(e.Variants.Length);
                    foreach (var v in e.Variants)
                        variants.Add(new SchemaInfoObjectVariant { Case = v.Case, Type = Use(v.Type) });
                }

                return new SchemaInfo
                {
                    Name = Mask(key),
                    MetaType = SchemaMetaType.Object,
                    Object = new SchemaInfoObject { Members = members, Tag = e.Tag, Variants = variants },
                };
        }
    }
}
