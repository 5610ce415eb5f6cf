using System.Buffers.Binary;
using SharpBlock.Nbd.Protocol;

namespace SharpBlock.Nbd.Server;

/// <summary>
/// The extents of one BLOCK_STATUS chunk as they are found: neighbours with equal flags merge, runs longer
/// than an extent's 32-bit length split, and the list stops at the reply's bound (one extent for REQ_ONE).
/// </summary>
internal sealed class ExtentList(bool one)
{
    /// <summary>Extents in one chunk; enough for any real map, small enough to bound the reply.</summary>
    public const int MaxExtents = 4096;

    private readonly List<BlockStatusDescriptor> _extents = [];

    public bool Full => _extents.Count >= (one ? 1 : MaxExtents);

    public void Add(long run, uint flags)
    {
        while (run > 0 && !Full)
        {
            uint piece = (uint)Math.Min(run, 0x80000000L);
            if (_extents.Count > 0 && _extents[^1].Flags == flags && (ulong)_extents[^1].Length + piece <= uint.MaxValue)
                _extents[^1] = _extents[^1] with { Length = _extents[^1].Length + piece };
            else if (one && _extents.Count > 0)
                return;
            else
                _extents.Add(new BlockStatusDescriptor(piece, flags));
            run -= piece;
        }
    }

    /// <summary>The chunk for context <paramref name="id"/>, not yet flagged done.</summary>
    public byte[] ToChunk(ulong cookie, uint id)
    {
        int payload = 4 + (_extents.Count * BlockStatusDescriptor.Size);
        var msg = new byte[StructuredReplyHeader.Size + payload];
        new StructuredReplyHeader(NbdConstants.StructuredReplyMagic, NbdChunkFlags.None, NbdChunkType.BlockStatus, cookie, (uint)payload).Write(msg);
        BinaryPrimitives.WriteUInt32BigEndian(msg.AsSpan(StructuredReplyHeader.Size), id);
        for (int i = 0; i < _extents.Count; i++)
            _extents[i].Write(msg.AsSpan(StructuredReplyHeader.Size + 4 + (i * BlockStatusDescriptor.Size)));
        return msg;
    }
}
