using System;
using System.Collections.Generic;

namespace SharpBlock.SchemaGen;

/// <summary>The whole schema: every definition by name, checked for dangling references.</summary>
internal sealed class Schema
{
    public static readonly HashSet<string> Builtins = new(StringComparer.Ordinal)
    {
        "str", "int", "int64", "int32", "int16", "int8", "uint64", "uint32", "uint16", "uint8", "size", "bool", "number", "any", "null",
    };

    public Dictionary<string, Definition> ByName { get; } = new(StringComparer.Ordinal);
    public List<Definition> All { get; } = new();

    public void AddFile(string text, string file)
    {
        foreach (var def in SchemaParser.ParseFile(text, file))
        {
            int before = All.Count;
            AddExpression(def.Key, file);
            if (All.Count > before && All[before] is StructDef s)
            {
                s.Docs = MemberDocs(def.Value);
                // Files named image-*.qapi hold the -o options of the image formats (see ImageOptionsEmitter).
                s.IsImageOptions = file.StartsWith("image-", StringComparison.Ordinal);
            }
        }
    }

    /// <summary>
    /// The "@name: text" paragraphs of a definition's doc comment, continuation lines joined, so that help
    /// texts come from the schema's own words.
    /// </summary>
    private static Dictionary<string, string> MemberDocs(List<string> lines)
    {
        var docs = new Dictionary<string, string>(StringComparer.Ordinal);
        string? current = null;
        foreach (string line in lines)
        {
            if (line.StartsWith("@", StringComparison.Ordinal))
            {
                int colon = line.IndexOf(':');
                if (colon < 0)
                    continue;
                current = line.Substring(1, colon - 1);
                docs[current] = line.Substring(colon + 1).Trim();
            }
            else if (current != null && line.Length > 0 && line != "#")
            {
                docs[current] = (docs[current] + " " + line).Trim();
            }
            else
            {
                current = null;
            }
        }

        return docs;
    }

    private static object? Get(List<KeyValuePair<string, object>> expr, string key)
    {
        foreach (var kv in expr)
        {
            if (kv.Key == key)
                return kv.Value;
        }

        return null;
    }

    private void Add(Definition d, string file)
    {
        if (ByName.ContainsKey(d.Name))
            throw new FormatException(file + ": '" + d.Name + "' is defined twice");
        ByName.Add(d.Name, d);
        All.Add(d);
    }

    private static List<Member> Members(object? data, string owner)
    {
        var members = new List<Member>();
        if (data == null)
            return members;
        if (data is not List<KeyValuePair<string, object>> dict)
            throw new FormatException("'" + owner + "': data must be an object");
        foreach (var kv in dict)
        {
            bool optional = kv.Key.StartsWith("*", StringComparison.Ordinal);
            string name = optional ? kv.Key.Substring(1) : kv.Key;
            members.Add(new Member(name, ParseType(kv.Value, owner + "." + name), optional));
        }

        return members;
    }

    private static TypeRef ParseType(object value, string where)
    {
        if (value is string s)
            return new TypeRef(s, false);
        if (value is List<object> l && l.Count == 1 && l[0] is string e)
            return new TypeRef(e, true);
        throw new FormatException("'" + where + "': a member type is a name or a one-element list");
    }

    private static List<KeyValuePair<string, string>> Branches(object? data, string owner)
    {
        var result = new List<KeyValuePair<string, string>>();
        if (data is not List<KeyValuePair<string, object>> dict)
            throw new FormatException("'" + owner + "': data must be an object");
        foreach (var kv in dict)
            result.Add(new KeyValuePair<string, string>(kv.Key, (string)kv.Value));
        return result;
    }

    private void AddExpression(List<KeyValuePair<string, object>> expr, string file)
    {
        string kind = expr[0].Key;
        string name = (string)expr[0].Value;
        object? data = Get(expr, "data");
        switch (kind)
        {
            case "enum":
                var values = new List<string>();
                foreach (object v in (List<object>)data!)
                    values.Add((string)v);
                Add(new EnumDef(name, values), file);
                break;
            case "struct":
            case "type":
                Add(new StructDef(name, Get(expr, "base") as string, Members(data, name)), file);
                break;
            case "union":
                Add(new UnionDef(name, Get(expr, "base") as string, Get(expr, "discriminator") as string, Branches(data, name)), file);
                break;
            case "alternate":
                Add(new AlternateDef(name, Branches(data, name)), file);
                break;
            case "command":
                string? args = null;
                if (data is string named)
                {
                    args = named;
                }
                else if (data != null)
                {
                    args = Naming.Pascal(name) + "Arguments";
                    Add(new StructDef(args, null, Members(data, name)), file);
                }

                object? ret = Get(expr, "returns");
                Add(new CommandDef(name, args, ret == null ? null : ParseType(ret, name + ".returns")), file);
                break;
            case "event":
                string dataType = Naming.Pascal(name.ToLowerInvariant()) + "Event";
                Add(new StructDef(dataType, null, Members(data, name)), file);
                Add(new EventDef(name, dataType), file);
                break;
            default:
                throw new FormatException(file + ": unknown definition kind '" + kind + "'");
        }
    }

    /// <summary>Checks every reference and marks the structs that others derive from.</summary>
    public void Resolve()
    {
        foreach (var d in All)
        {
            switch (d)
            {
                case StructDef s:
                    if (s.BaseName != null)
                        ((StructDef)Lookup(s.BaseName, s.Name)).IsBase = true;
                    foreach (var m in s.Members)
                        CheckType(m.Type.Name, s.Name);
                    break;
                case UnionDef u:
                    if (u.BaseName != null)
                        ((StructDef)Lookup(u.BaseName, u.Name)).IsBase = true;
                    foreach (var b in u.Branches)
                        CheckType(b.Value, u.Name);
                    break;
                case AlternateDef a:
                    foreach (var b in a.Branches)
                        CheckType(b.Value, a.Name);
                    break;
                case CommandDef c:
                    if (c.ArgsType != null)
                        CheckType(c.ArgsType, c.Name);
                    if (c.Returns != null)
                        CheckType(c.Returns.Name, c.Name);
                    break;
            }
        }
    }

    private void CheckType(string type, string where)
    {
        if (!Builtins.Contains(type))
            Lookup(type, where);
    }

    public Definition Lookup(string name, string where)
    {
        if (!ByName.TryGetValue(name, out var d))
            throw new FormatException("'" + where + "' refers to undefined type '" + name + "'");
        return d;
    }

    /// <summary>All members of a struct, its bases' first (that is the wire order QEMU checks).</summary>
    public List<Member> AllMembers(StructDef s)
    {
        var list = new List<Member>();
        if (s.BaseName != null)
            list.AddRange(AllMembers((StructDef)ByName[s.BaseName]));
        list.AddRange(s.Members);
        return list;
    }
}
