using System.Collections.Generic;

namespace SharpBlock.SchemaGen;

/// <summary>A member of a struct, command or event: its wire name, its type and whether it may be absent.</summary>
internal sealed class Member
{
    public Member(string wireName, TypeRef type, bool optional)
    {
        WireName = wireName;
        Type = type;
        Optional = optional;
    }

    public string WireName { get; }
    public TypeRef Type { get; }
    public bool Optional { get; }
    public string PropertyName => Naming.Pascal(WireName);
}

/// <summary>A reference to a builtin or a defined type, possibly a list of it.</summary>
internal sealed class TypeRef
{
    public TypeRef(string name, bool isList)
    {
        Name = name;
        IsList = isList;
    }

    public string Name { get; }
    public bool IsList { get; }
}

internal abstract class Definition
{
    protected Definition(string name) => Name = name;

    public string Name { get; }
    public virtual string ClassName => Naming.TypeName(Name);
}

internal sealed class EnumDef : Definition
{
    public EnumDef(string name, List<string> values) : base(name) => Values = values;

    public List<string> Values { get; }
}

internal sealed class StructDef : Definition
{
    public StructDef(string name, string? baseName, List<Member> members, string? className = null) : base(name)
    {
        BaseName = baseName;
        Members = members;
        _className = className;
    }

    private readonly string? _className;
    public string? BaseName { get; }
    public List<Member> Members { get; }
    public bool IsBase { get; set; }
    public override string ClassName => _className ?? Naming.TypeName(Name);

    /// <summary>Member docs by wire name, from the comment before the definition.</summary>
    public Dictionary<string, string> Docs { get; set; } = new();

    /// <summary>True for the structs that describe an image format's -o options.</summary>
    public bool IsImageOptions { get; set; }
}

/// <summary>A union: flat (a base struct whose discriminator member selects the branch) or simple ({"type", "data"}).</summary>
internal sealed class UnionDef : Definition
{
    public UnionDef(string name, string? baseName, string? discriminator, List<KeyValuePair<string, string>> branches) : base(name)
    {
        BaseName = baseName;
        Discriminator = discriminator;
        Branches = branches;
    }

    public string? BaseName { get; }
    public string? Discriminator { get; }
    public List<KeyValuePair<string, string>> Branches { get; }
    public bool IsFlat => Discriminator != null;
    public string KindEnumName => ClassName + "Kind";
}

/// <summary>An alternate: one value that is either an object of one type or a scalar of another.</summary>
internal sealed class AlternateDef : Definition
{
    public AlternateDef(string name, List<KeyValuePair<string, string>> branches) : base(name) => Branches = branches;

    public List<KeyValuePair<string, string>> Branches { get; }
}

internal sealed class CommandDef : Definition
{
    public CommandDef(string name, string? argsType, TypeRef? returns) : base(name)
    {
        ArgsType = argsType;
        Returns = returns;
    }

    /// <summary>The struct holding the arguments (a named one, or one made for inline data); null when none.</summary>
    public string? ArgsType { get; }
    public TypeRef? Returns { get; }
}

internal sealed class EventDef : Definition
{
    public EventDef(string name, string dataType) : base(name) => DataType = dataType;

    public string DataType { get; }
}
