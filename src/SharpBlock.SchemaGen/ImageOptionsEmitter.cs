using System.Text;

namespace SharpBlock.SchemaGen;

/// <summary>
/// For the structs of image-*.qapi, the image formats' -o options: a table of the options with the help text
/// of the schema's member docs (what "-o help" prints), and a reader that fills the struct from parsed option
/// values. Every member is optional there, since the format decides the defaults.
/// </summary>
internal static class ImageOptionsEmitter
{
    private const string Ns = "global::SharpBlock.Drivers.Creation.";

    public static void Emit(StringBuilder sb, Schema schema, StructDef s)
    {
        var members = schema.AllMembers(s);
        sb.AppendLine("    /// <summary>The -o options of '" + s.Name + "', with the schema's help texts.</summary>");
        sb.AppendLine("    public static readonly " + Ns + "ImageOption[] Options =");
        sb.AppendLine("    [");
        foreach (var m in members)
        {
            if (!m.Optional || m.Type.IsList)
                throw new System.FormatException(s.Name + "." + m.WireName + ": image options are optional scalars");
            string doc = Doc(schema, s, m.WireName) ?? throw new System.FormatException(s.Name + "." + m.WireName + ": an image option needs a doc line");
            sb.AppendLine("        new(" + Naming.Literal(m.WireName) + ", " + Ns + "ImageOptionType." + OptionType(schema, m) + ", " + Naming.Literal(doc) + "),");
        }

        sb.AppendLine("    ];");
        sb.AppendLine();
        sb.AppendLine("    /// <summary>The options that were given, read by type; absent ones stay null.</summary>");
        sb.AppendLine("    public static " + s.ClassName + " Read(" + Ns + "ImageOptionValues values) => new()");
        sb.AppendLine("    {");
        foreach (var m in members)
            sb.AppendLine("        " + TypesEmitter.PropertyName(s.ClassName, m) + " = " + Reader(schema, m) + ",");
        sb.AppendLine("    };");
    }

    private static string? Doc(Schema schema, StructDef s, string member)
    {
        for (StructDef? d = s; d != null; d = d.BaseName != null ? (StructDef)schema.ByName[d.BaseName] : null)
        {
            if (d.Docs.TryGetValue(member, out var doc) && doc.Length > 0)
                return doc;
        }

        return null;
    }

    private static string OptionType(Schema schema, Member m) => m.Type.Name switch
    {
        "str" => "String",
        "size" => "Size",
        "int" or "int64" or "int32" or "uint64" or "uint32" => "Number",
        "bool" => "Bool",
        _ when schema.ByName.TryGetValue(m.Type.Name, out var d) && d is EnumDef => "String",
        _ => throw new System.FormatException(m.WireName + ": type '" + m.Type.Name + "' cannot be an image option"),
    };

    private static string Reader(Schema schema, Member m)
    {
        string name = Naming.Literal(m.WireName);
        return m.Type.Name switch
        {
            "str" => "values.Str(" + name + ")",
            "size" => "values.Size(" + name + ")",
            "int" or "int64" => "values.Number(" + name + ")",
            "int32" => "(int?)values.Number(" + name + ")",
            "uint64" => "(ulong?)values.Number(" + name + ")",
            "uint32" => "(uint?)values.Number(" + name + ")",
            "bool" => "values.Bool(" + name + ")",
            _ => "values.Enum<" + schema.ByName[m.Type.Name].ClassName + ">(" + name + ", QapiEnums.TryParse)",
        };
    }
}
