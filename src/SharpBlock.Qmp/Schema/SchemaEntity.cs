namespace SharpBlock.Qmp.Schema;

/// <summary>The kinds of entity the generated introspection table holds.</summary>
public enum SchemaEntityKind
{
    Enum,
    Object,
    Alternate,
    Command,
    Event,
}

/// <summary>A member of an object entity. Type names a builtin, another entity, or "[element]" for a list.</summary>
public readonly record struct SchemaEntityMember(string Name, string Type, bool Optional);

/// <summary>One tag value of an object entity and the object whose members it adds.</summary>
public readonly record struct SchemaEntityVariant(string Case, string Type);

/// <summary>
/// One schema entity as introspection sees it, with its real (unmasked) name and references; the generator
/// emits the table (QapiIntrospection.Entities), SchemaIntrospection turns it into SchemaInfo.
/// </summary>
public sealed class SchemaEntity
{
    private SchemaEntity(SchemaEntityKind kind, string name) => (Kind, Name) = (kind, name);

    public SchemaEntityKind Kind { get; }
    public string Name { get; }
    public string[] Values { get; private init; } = [];
    public SchemaEntityMember[] Members { get; private init; } = [];
    public string? Tag { get; private init; }
    public SchemaEntityVariant[] Variants { get; private init; } = [];
    public string[] Alternatives { get; private init; } = [];

    /// <summary>A command's or event's argument type; null for none.</summary>
    public string? ArgType { get; private init; }

    /// <summary>A command's return type; null for none.</summary>
    public string? ReturnType { get; private init; }

    public static SchemaEntity Enum(string name, string[] values) => new(SchemaEntityKind.Enum, name) { Values = values };

    public static SchemaEntity Object(string name, SchemaEntityMember[] members, string? tag = null, SchemaEntityVariant[]? variants = null) =>
        new(SchemaEntityKind.Object, name) { Members = members, Tag = tag, Variants = variants ?? [] };

    public static SchemaEntity Alternate(string name, string[] types) => new(SchemaEntityKind.Alternate, name) { Alternatives = types };

    public static SchemaEntity Command(string name, string? args, string? returns) =>
        new(SchemaEntityKind.Command, name) { ArgType = args, ReturnType = returns };

    public static SchemaEntity Event(string name, string? data) => new(SchemaEntityKind.Event, name) { ArgType = data };
}
