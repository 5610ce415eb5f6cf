namespace SharpBlock.SchemaGen;

/// <summary>How schema types map onto C# types.</summary>
internal static class CSharpTypes
{
    public static string Builtin(string name) => name switch
    {
        "str" => "string",
        "int" or "int64" => "long",
        "int32" => "int",
        "int16" => "short",
        "int8" => "sbyte",
        "uint64" or "size" => "ulong",
        "uint32" => "uint",
        "uint16" => "ushort",
        "uint8" => "byte",
        "bool" => "bool",
        "number" => "double",
        // A JSON value of any kind; the library keeps it opaque (the QMP side boxes a JsonElement in it).
        "any" => "object",
        // JSON null, only as an alternate's branch: the property is true when the value was null.
        "null" => "bool",
        _ => "",
    };

    public static bool IsValueType(Schema schema, TypeRef t) =>
        !t.IsList && (schema.ByName.TryGetValue(t.Name, out var d) ? d is EnumDef : t.Name is not ("str" or "any"));

    public static string Element(Schema schema, string name)
    {
        string b = Builtin(name);
        return b.Length > 0 ? b : schema.ByName[name].ClassName;
    }

    public static string Of(Schema schema, TypeRef t)
    {
        string e = Element(schema, t.Name);
        return t.IsList ? "global::System.Collections.Generic.List<" + e + ">" : e;
    }
}
