using System.Collections.Generic;
using System.Text;

namespace SharpBlock.SchemaGen;

/// <summary>
/// Emits the schema as data for query-qmp-schema: every type, command and event flattened the way QEMU's
/// introspection sees them (base members folded in, simple unions as a tag plus wrapper objects, missing
/// flat-union branches as the empty object). Which commands are served, and so which types are reachable,
/// is only known at run time, so masking and pruning happen there (SharpBlock.Qmp's SchemaIntrospection).
/// </summary>
internal static class IntrospectionEmitter
{
    /// <summary>The implicit empty object type; QEMU's name for it, masked on the wire like any other.</summary>
    public const string EmptyObject = "q_empty";

    public static void Emit(StringBuilder sb, Schema schema)
    {
        sb.AppendLine("/// <summary>The schema's entities, for query-qmp-schema.</summary>");
        sb.AppendLine("internal static partial class QapiIntrospection");
        sb.AppendLine("{");
        sb.AppendLine("    public static readonly SchemaEntity[] Entities =");
        sb.AppendLine("    [");
        sb.AppendLine("        SchemaEntity.Object(" + Naming.Literal(EmptyObject) + ", []),");
        var wrappers = new HashSet<string>();
        foreach (var d in schema.All)
        {
            switch (d)
            {
                case EnumDef e:
                    sb.AppendLine("        SchemaEntity.Enum(" + Naming.Literal(e.Name) + ", " + Strings(e.Values) + "),");
                    break;
                case StructDef s:
                    sb.AppendLine("        SchemaEntity.Object(" + Naming.Literal(s.Name) + ", " + Members(schema.AllMembers(s)) + "),");
                    break;
                case UnionDef { IsFlat: true } u:
                    EmitFlatUnion(sb, schema, u);
                    break;
                case UnionDef u:
                    EmitSimpleUnion(sb, u, wrappers);
                    break;
                case AlternateDef a:
                    var types = new List<string>();
                    foreach (var b in a.Branches)
                        types.Add(b.Value);
                    sb.AppendLine("        SchemaEntity.Alternate(" + Naming.Literal(a.Name) + ", " + Strings(types) + "),");
                    break;
                case CommandDef c:
                    string ret = c.Returns == null ? "null" : Naming.Literal(Ref(c.Returns));
                    sb.AppendLine("        SchemaEntity.Command(" + Naming.Literal(c.Name) + ", " + Arg(schema, c.ArgsType) + ", " + ret + "),");
                    break;
                case EventDef ev:
                    sb.AppendLine("        SchemaEntity.Event(" + Naming.Literal(ev.Name) + ", " + Arg(schema, ev.DataType) + "),");
                    break;
            }
        }

        sb.AppendLine("    ];");
        sb.AppendLine("}");
    }

    private static void EmitFlatUnion(StringBuilder sb, Schema schema, UnionDef u)
    {
        var baseMembers = schema.AllMembers((StructDef)schema.ByName[u.BaseName!]);
        Member tag = baseMembers.Find(m => m.WireName == u.Discriminator)!;
        var cases = new List<KeyValuePair<string, string>>(u.Branches);
        // QEMU fills every tag value without a branch with the empty object, after the explicit ones.
        foreach (string value in ((EnumDef)schema.ByName[tag.Type.Name]).Values)
        {
            if (!cases.Exists(b => b.Key == value))
                cases.Add(new KeyValuePair<string, string>(value, EmptyObject));
        }

        sb.AppendLine("        SchemaEntity.Object(" + Naming.Literal(u.Name) + ", " + Members(baseMembers) + ", "
            + Naming.Literal(tag.WireName) + ", " + Variants(cases) + "),");
    }

    private static void EmitSimpleUnion(StringBuilder sb, UnionDef u, HashSet<string> wrappers)
    {
        string kind = u.Name + "Kind";
        var values = new List<string>();
        var cases = new List<KeyValuePair<string, string>>();
        foreach (var b in u.Branches)
        {
            values.Add(b.Key);
            string wrapper = "q_obj_" + b.Value + "-wrapper";
            cases.Add(new KeyValuePair<string, string>(b.Key, wrapper));
            if (wrappers.Add(wrapper))
                sb.AppendLine("        SchemaEntity.Object(" + Naming.Literal(wrapper) + ", [new(\"data\", " + Naming.Literal(b.Value) + ", false)]),");
        }

        sb.AppendLine("        SchemaEntity.Enum(" + Naming.Literal(kind) + ", " + Strings(values) + "),");
        sb.AppendLine("        SchemaEntity.Object(" + Naming.Literal(u.Name) + ", [new(\"type\", " + Naming.Literal(kind) + ", false)], \"type\", " + Variants(cases) + "),");
    }

    /// <summary>A command's or event's argument type; none (and an empty data object) is the empty object.</summary>
    private static string Arg(Schema schema, string? type)
    {
        if (type == null || schema.ByName[type] is StructDef { Members.Count: 0, BaseName: null })
            return "null";
        return Naming.Literal(type);
    }

    private static string Ref(TypeRef t) => t.IsList ? "[" + t.Name + "]" : t.Name;

    private static string Strings(List<string> values)
    {
        var sb = new StringBuilder("[");
        for (int i = 0; i < values.Count; i++)
            sb.Append(i == 0 ? "" : ", ").Append(Naming.Literal(values[i]));
        return sb.Append(']').ToString();
    }

    private static string Members(List<Member> members)
    {
        var sb = new StringBuilder("[");
        for (int i = 0; i < members.Count; i++)
        {
            var m = members[i];
            sb.Append(i == 0 ? "" : ", ").Append("new(").Append(Naming.Literal(m.WireName)).Append(", ")
                .Append(Naming.Literal(Ref(m.Type))).Append(", ").Append(m.Optional ? "true" : "false").Append(')');
        }

        return sb.Append(']').ToString();
    }

    private static string Variants(List<KeyValuePair<string, string>> cases)
    {
        var sb = new StringBuilder("[");
        for (int i = 0; i < cases.Count; i++)
            sb.Append(i == 0 ? "" : ", ").Append("new(").Append(Naming.Literal(cases[i].Key)).Append(", ").Append(Naming.Literal(cases[i].Value)).Append(')');
        return sb.Append(']').ToString();
    }
}
