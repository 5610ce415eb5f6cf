using SharpBlock.Errors;

namespace SharpBlock.Graph;

/// <summary>
/// A device as a seekable Stream of fixed length. The async methods are the real path; the synchronous
/// ones exist because Stream's contract has them, and wait on the async path (no library code calls them).
/// </summary>
internal sealed class BlockStream : Stream
{
    private readonly BlockBackend _device;
    private long _position;

    public BlockStream(BlockBackend device) => _device = device;

    public override bool CanRead => true;
    public override bool CanSeek => true;
    public override bool CanWrite => _device.Root is { ReadOnly: false };
    public override long Length => _device.Length;

    public override long Position
    {
        get => _position;
        set => _position = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(value));
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        long n = Math.Min(buffer.Length, Math.Max(0, Length - _position));
        if (n == 0)
            return 0;
        await _device.ReadAsync(_position, buffer[..(int)n], cancellationToken).ConfigureAwait(false);
        _position += n;
        return (int)n;
    }

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_position + buffer.Length > Length)
            throw new BlockException(Errno.ENOSPC, "Write past the end of the device");
        await _device.WriteAsync(_position, buffer, Io.RequestFlags.None, cancellationToken).ConfigureAwait(false);
        _position += buffer.Length;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override Task FlushAsync(CancellationToken cancellationToken) => _device.FlushAsync(cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override void Flush() => _device.FlushAsync().AsTask().GetAwaiter().GetResult();

    public override long Seek(long offset, SeekOrigin origin)
    {
        Position = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => _position + offset,
            _ => Length + offset,
        };
        return _position;
    }

    public override void SetLength(long value) => _device.ResizeAsync(value).AsTask().GetAwaiter().GetResult();
}
