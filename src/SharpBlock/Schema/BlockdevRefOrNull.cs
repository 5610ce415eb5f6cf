namespace SharpBlock.Schema;

public sealed partial class BlockdevRefOrNull
{
    /// <summary>The same node reference, in the form a backing member takes.</summary>
    public static BlockdevRefOrNull From(BlockdevRef reference)
    {
        ArgumentNullException.ThrowIfNull(reference);
        return new BlockdevRefOrNull { Definition = reference.Definition, Reference = reference.Reference };
    }

    /// <summary>
    /// No node: JSON null, or the seed's empty reference. Both say "open no backing image", whatever the
    /// image header names.
    /// </summary>
    public bool IsNone => Null == true || Reference is "";

    /// <summary>The node this names, for opening; call only when <see cref="IsNone"/> is false.</summary>
    public BlockdevRef ToRef() => new() { Definition = Definition, Reference = Reference };
}
