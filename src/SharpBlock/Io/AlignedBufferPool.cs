using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace SharpBlock.Io;

/// <summary>
/// Page-aligned native buffers for O_DIRECT, which rejects user buffers that are not aligned to the
/// device's logical block. Fixed-size chunks are recycled, so a busy device allocates none per request.
/// </summary>
public sealed class AlignedBufferPool
{
    public const int Alignment = 4096;
    public const int ChunkSize = 1 << 20;
    private const int MaxPooled = 64;

    private readonly ConcurrentBag<AlignedBuffer> _free = [];

    public static AlignedBufferPool Shared { get; } = new();

    public AlignedBuffer Rent() => _free.TryTake(out var b) ? b : new AlignedBuffer(ChunkSize);

    public void Return(AlignedBuffer buffer)
    {
        if (_free.Count < MaxPooled)
            _free.Add(buffer);
        else
            ((IDisposable)buffer).Dispose();
    }
}

/// <summary>A block of native memory aligned to <see cref="AlignedBufferPool.Alignment"/>.</summary>
public sealed unsafe class AlignedBuffer : MemoryManager<byte>
{
    private void* _ptr;
    private readonly int _length;

    public AlignedBuffer(int length)
    {
        _length = length;
        _ptr = NativeMemory.AlignedAlloc((nuint)length, AlignedBufferPool.Alignment);
    }

    public override Span<byte> GetSpan() => new(_ptr, _length);

    public override MemoryHandle Pin(int elementIndex = 0) => new((byte*)_ptr + elementIndex);

    public override void Unpin()
    {
    }

    protected override void Dispose(bool disposing)
    {
        if (_ptr != null)
        {
            NativeMemory.AlignedFree(_ptr);
            _ptr = null;
        }
    }
}
