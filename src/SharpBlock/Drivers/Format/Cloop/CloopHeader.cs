using System.Buffers.Binary;

namespace SharpBlock.Drivers.Format.Cloop;

/// <summary>The two numbers after the preamble (layout in <see cref="CloopLayout"/>); the offset table follows.</summary>
internal readonly record struct CloopHeader(uint BlockSize, uint BlockCount)
{
    public const int Size = 8;

    /// <summary>Reads the header from its 8 bytes (file offset 128).</summary>
    public static CloopHeader Read(ReadOnlySpan<byte> b) =>
        new(BinaryPrimitives.ReadUInt32BigEndian(b), BinaryPrimitives.ReadUInt32BigEndian(b[4..]));

    public void Write(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt32BigEndian(b, BlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(b[4..], BlockCount);
    }

    /// <summary>Bytes of the offset table: n_blocks + 1 entries.</summary>
    public long OffsetsBytes => ((long)BlockCount + 1) * 8;
}
