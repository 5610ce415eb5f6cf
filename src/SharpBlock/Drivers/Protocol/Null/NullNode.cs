using SharpBlock.Graph;
using SharpBlock.Io;

namespace SharpBlock.Drivers.Protocol.Null;

/// <summary>
/// QEMU's null-co as a library node: a disk of a fixed size that reads zeros (or leaves the buffer as it is,
/// for benchmarks that measure the layers above), takes every write and keeps nothing. It lets a benchmark
/// or a test time the graph, a format or a job without any device underneath.
/// </summary>
public sealed class NullNode : BlockNode
{
    private readonly long _size;
    private readonly bool _readZeroes;

    public NullNode(long size, NodeSettings settings, bool readZeroes = true)
        : base(settings)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        _size = size;
        _readZeroes = readZeroes;
    }

    public override string DriverName => "null-co";

    public override string Filename => "null-co://";

    public override long Length => _size;

    protected override ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        if (_readZeroes)
            buffer.Span.Clear();
        return ValueTask.CompletedTask;
    }

    protected override ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags, CancellationToken cancellationToken) =>
        ValueTask.CompletedTask;

    protected override ValueTask WriteZeroesCoreAsync(long offset, long length, RequestFlags flags, CancellationToken cancellationToken) =>
        ValueTask.CompletedTask;

    protected override ValueTask FlushCoreAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    /// <summary>Every byte reads as zero, so block status says so (as null-co does with read-zeroes).</summary>
    protected override ValueTask<BlockStatus> BlockStatusCoreAsync(long offset, long length, CancellationToken cancellationToken) =>
        ValueTask.FromResult(new BlockStatus(_readZeroes ? BlockStatusFlags.Zero | BlockStatusFlags.Data : BlockStatusFlags.Data, length));
}
