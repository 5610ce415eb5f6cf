using System.Buffers;

namespace SharpBlock.Nbd.Tests.Protocol;

/// <summary>Builds multi-segment sequences, as a pipe hands over bytes that arrived in several reads.</summary>
internal sealed class Segment : ReadOnlySequenceSegment<byte>
{
    public Segment(ReadOnlyMemory<byte> memory) => Memory = memory;

    public Segment Append(ReadOnlyMemory<byte> memory)
    {
        var next = new Segment(memory) { RunningIndex = RunningIndex + Memory.Length };
        Next = next;
        return next;
    }

    public static ReadOnlySequence<byte> Of(params ReadOnlyMemory<byte>[] parts)
    {
        var first = new Segment(parts[0]);
        var last = first;
        for (int i = 1; i < parts.Length; i++)
            last = last.Append(parts[i]);
        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    /// <summary>The message split into single bytes, one segment each.</summary>
    public static ReadOnlySequence<byte> Bytewise(byte[] message)
    {
        var parts = new ReadOnlyMemory<byte>[message.Length];
        for (int i = 0; i < message.Length; i++)
            parts[i] = message.AsMemory(i, 1);
        return Of(parts);
    }
}
