using System.Buffers.Binary;

namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>
/// One header extension: <c>type (4) | length (4) | data (length, padded to a multiple of 8)</c>.
/// The list starts after the header and ends with a type 0 extension; all of it lies in the first cluster.
/// </summary>
public readonly record struct Qcow2HeaderExtension(uint Type, uint Length)
{
    public const int Size = 8;

    /// <summary>Bytes the extension occupies including its data and padding.</summary>
    public long TotalSize => Size + (((long)Length + 7) & ~7L);

    public static Qcow2HeaderExtension Read(ReadOnlySpan<byte> b) =>
        new(BinaryPrimitives.ReadUInt32BigEndian(b), BinaryPrimitives.ReadUInt32BigEndian(b[4..]));

    public void Write(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt32BigEndian(b, Type);
        BinaryPrimitives.WriteUInt32BigEndian(b[4..], Length);
    }
}

/// <summary>
/// One entry of the feature name table extension: <c>type (1: 0 incompatible, 1 compatible, 2 autoclear) |
/// bit number (1) | name (46, NUL padded)</c>.
/// </summary>
public readonly record struct Qcow2FeatureName(byte Kind, byte Bit, string Name)
{
    public const int Size = 48;
    public const int NameLength = 46;

    public const byte Incompatible = 0;
    public const byte Compatible = 1;
    public const byte Autoclear = 2;

    public static Qcow2FeatureName Read(ReadOnlySpan<byte> b)
    {
        var name = b.Slice(2, NameLength);
        int end = name.IndexOf((byte)0);
        if (end >= 0)
            name = name[..end];
        return new Qcow2FeatureName(b[0], b[1], System.Text.Encoding.UTF8.GetString(name));
    }

    public void Write(Span<byte> b)
    {
        b[..Size].Clear();
        b[0] = Kind;
        b[1] = Bit;
        int n = System.Text.Encoding.UTF8.GetBytes(Name.AsSpan(), b.Slice(2, NameLength));
        _ = n;
    }

    /// <summary>The table QEMU 7.2 writes into new images.</summary>
    public static IReadOnlyList<Qcow2FeatureName> Standard { get; } =
    [
        new(Incompatible, 0, "dirty bit"),
        new(Incompatible, 1, "corrupt bit"),
        new(Incompatible, 2, "external data file"),
        new(Incompatible, 3, "compression type"),
        new(Incompatible, 4, "extended L2 entries"),
        new(Compatible, 0, "lazy refcounts"),
        new(Autoclear, 0, "bitmaps"),
        new(Autoclear, 1, "raw external data"),
    ];
}
