using System.Text;

namespace SharpBlock.SchemaGen;

internal static class Naming
{
    /// <summary>Wire names use '-', '_' and '.' between words; C# names are PascalCase.</summary>
    public static string Pascal(string wire)
    {
        var sb = new StringBuilder(wire.Length);
        bool upper = true;
        foreach (char c in wire)
        {
            if (c == '-' || c == '_' || c == '.')
            {
                upper = true;
                continue;
            }

            sb.Append(upper ? char.ToUpperInvariant(c) : c);
            upper = false;
        }

        if (sb.Length > 0 && char.IsDigit(sb[0]))
            sb.Insert(0, 'N');
        return sb.ToString();
    }

    /// <summary>A type name that cannot collide with the System types every file sees through implicit usings.</summary>
    public static string TypeName(string wire)
    {
        string p = Pascal(wire);
        return p is "String" or "Object" or "Type" or "Enum" or "Action" or "Task" or "Stream" or "Version" ? "Qapi" + p : p;
    }

    public static string Literal(string s) => "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
}
