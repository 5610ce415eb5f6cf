using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Io;

namespace SharpBlock.Drivers.Protocol.Memory;

/// <summary>
/// A protocol node whose bytes live in one managed array: a format opens over it exactly as over a file,
/// so tests, fuzz targets and benchmarks drive the real open and I/O paths without touching a disk. It
/// grows like the file node (writes past the end extend it, reads past the end see zeros), up to a cap.
/// </summary>
public sealed class MemoryNode : BlockNode
{
    /// <summary>The default cap: a hostile image that points a write far past its end must fail, not exhaust memory.</summary>
    public const long DefaultMaxLength = 256L << 20;

    private readonly Lock _lock = new();
    private readonly string _name;
    private readonly long _maxLength;
    private byte[] _data;
    private long _length;
    private volatile bool _revoked;

    public MemoryNode(ReadOnlySpan<byte> initial, NodeSettings settings, string name = "memory", long maxLength = DefaultMaxLength)
        : base(settings)
    {
        _name = name;
        _maxLength = Math.Min(maxLength, Array.MaxLength);
        _data = initial.ToArray();
        _length = initial.Length;
    }

    public override string DriverName => "memory";

    public override string Filename => _name;

    public override long Length => Volatile.Read(ref _length);

    protected override bool Growable => true;

    /// <summary>
    /// Every later request fails with EIO, as on a disk that went away. A driver that loops on hostile
    /// metadata keeps doing I/O, so this is how a fuzz driver ends an operation it has given up waiting for.
    /// </summary>
    public void Revoke() => _revoked = true;

    private void CheckRevoked()
    {
        if (_revoked)
            throw new BlockException(Errno.EIO, $"I/O on '{_name}' failed: the memory node was revoked");
    }

    /// <summary>A copy of the current contents (what a reopen, or a crash, would find).</summary>
    public byte[] ToArray()
    {
        lock (_lock)
            return _data.AsSpan(0, (int)_length).ToArray();
    }

    protected override ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        CheckRevoked();
        lock (_lock)
        {
            var dst = buffer.Span;
            int inside = offset >= _length ? 0 : (int)Math.Min(dst.Length, _length - offset);
            if (inside > 0)
                _data.AsSpan((int)offset, inside).CopyTo(dst);
            dst[inside..].Clear();
        }

        return ValueTask.CompletedTask;
    }

    protected override ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags, CancellationToken cancellationToken)
    {
        CheckRevoked();
        lock (_lock)
        {
            EnsureCapacity(offset + data.Length);
            data.Span.CopyTo(_data.AsSpan((int)offset));
            if (offset + data.Length > _length)
                Volatile.Write(ref _length, offset + data.Length);
        }

        return ValueTask.CompletedTask;
    }

    protected override ValueTask WriteZeroesCoreAsync(long offset, long length, RequestFlags flags, CancellationToken cancellationToken)
    {
        CheckRevoked();
        lock (_lock)
        {
            EnsureCapacity(offset + length);
            _data.AsSpan((int)offset, (int)length).Clear();
            if (offset + length > _length)
                Volatile.Write(ref _length, offset + length);
        }

        return ValueTask.CompletedTask;
    }

    protected override ValueTask DiscardCoreAsync(long offset, long length, CancellationToken cancellationToken)
    {
        CheckRevoked();
        // A punched hole in a file reads back as zeros; so does a discarded range here.
        lock (_lock)
        {
            long end = Math.Min(offset + length, _length);
            if (end > offset)
                _data.AsSpan((int)offset, (int)(end - offset)).Clear();
        }

        return ValueTask.CompletedTask;
    }

    protected override ValueTask FlushCoreAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    protected override ValueTask TruncateCoreAsync(long size, CancellationToken cancellationToken)
    {
        CheckRevoked();
        lock (_lock)
        {
            EnsureCapacity(size);
            if (size < _length)
                _data.AsSpan((int)size, (int)(_length - size)).Clear();
            Volatile.Write(ref _length, size);
        }

        return ValueTask.CompletedTask;
    }

    public override ValueTask<long> GetAllocatedFileSizeAsync(CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(Length);

    /// <summary>Caller holds the lock. Grows geometrically so an image written cluster by cluster copies O(n) bytes.</summary>
    private void EnsureCapacity(long end)
    {
        if (end > _maxLength)
            throw new BlockException(Errno.ENOSPC, $"Write to '{_name}' failed: {BlockException.Describe(Errno.ENOSPC)} (the memory node holds at most {_maxLength} bytes)");
        if (end <= _data.Length)
            return;
        long grown = Math.Min(_maxLength, Math.Max(end, Math.Max(4096, _data.Length * 2L)));
        Array.Resize(ref _data, (int)grown);
    }
}
