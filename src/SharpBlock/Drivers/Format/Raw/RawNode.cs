using SharpBlock.Graph;
using SharpBlock.Io;

namespace SharpBlock.Drivers.Format.Raw;

/// <summary>The raw format: the guest sees the bytes of its file child one to one.</summary>
public sealed class RawNode : BlockNode
{
    private readonly BlockNode _file;

    public RawNode(BlockNode file, NodeSettings settings)
        : base(settings)
    {
        _file = file;
        AttachChild(file, ChildRole.File, "file");
    }

    public override string DriverName => "raw";

    /// <summary>
    /// Whole 512-byte sectors, as QEMU counts every image: a file of 3000001 bytes is a 3000320-byte disk
    /// whose last sector reads zeros past the end of the file (and grows the file when written).
    /// </summary>
    public override long Length => (_file.Length + 511) & ~511L;

    protected override ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken) =>
        _file.ReadAsync(offset, buffer, cancellationToken);

    protected override ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags, CancellationToken cancellationToken) =>
        _file.WriteAsync(offset, data, flags, cancellationToken);

    protected override ValueTask WriteZeroesCoreAsync(long offset, long length, RequestFlags flags, CancellationToken cancellationToken) =>
        _file.WriteZeroesAsync(offset, length, flags, cancellationToken);

    protected override ValueTask DiscardCoreAsync(long offset, long length, CancellationToken cancellationToken) =>
        _file.DiscardAsync(offset, length, cancellationToken);

    protected override ValueTask FlushCoreAsync(CancellationToken cancellationToken) => _file.FlushAsync(cancellationToken);

    protected override ValueTask<BlockStatus> BlockStatusCoreAsync(long offset, long length, CancellationToken cancellationToken)
    {
        // The tail of a last, partial sector lies past the file: it reads as zeros and holds no data.
        long fileLength = _file.Length;
        if (offset >= fileLength)
            return ValueTask.FromResult(new BlockStatus(BlockStatusFlags.Zero | BlockStatusFlags.Allocated | BlockStatusFlags.OffsetValid, length, offset, _file));
        return _file.GetBlockStatusAsync(offset, Math.Min(length, fileLength - offset), cancellationToken);
    }

    protected override ValueTask TruncateCoreAsync(long size, CancellationToken cancellationToken) =>
        _file.TruncateAsync(size, cancellationToken);
}
