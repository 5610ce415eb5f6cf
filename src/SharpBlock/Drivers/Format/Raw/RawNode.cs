using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Io;

namespace SharpBlock.Drivers.Format.Raw;

/// <summary>The raw format: the guest sees the bytes of its file child one to one.</summary>
public sealed class RawNode : BlockNode
{
    private const int FirstSector = 512;
    private readonly BlockNode _file;
    private BlockDriverRegistry? _probedBy;

    public RawNode(BlockNode file, NodeSettings settings)
        : base(settings)
    {
        _file = file;
        AttachChild(file, ChildRole.File, "file");
        _debug = file.HasDebugFilter;
        file.ParentRaisesRequestEvents();
    }

    // Set when a blkdebug filter is below: raw raises QEMU's request events (read_aio, write_aio, flushes).
    private readonly bool _debug;

    private void Debug(Schema.BlkdebugEvent e)
    {
        if (_debug)
            _file.DebugEvent(e);
    }

    public override string DriverName => "raw";

    /// <summary>
    /// Marks the image as raw only by probing: from now on a write that would make its first sector look like
    /// another format is refused (EPERM), as QEMU does, so a guest cannot turn its disk into, say, a qcow2
    /// whose backing file is any file of the host the next time the image is probed.
    /// </summary>
    public void GuardProbedFormat(BlockDriverRegistry registry) => _probedBy = registry;

    /// <summary>
    /// Whole 512-byte sectors, as QEMU counts every image: a file of 3000001 bytes is a 3000320-byte disk
    /// whose last sector reads zeros past the end of the file (and grows the file when written).
    /// </summary>
    public override long Length => (_file.Length + 511) & ~511L;

    protected override ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        Debug(Schema.BlkdebugEvent.ReadAio);
        return _file.ReadAsync(offset, buffer, cancellationToken);
    }

    protected override ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags, CancellationToken cancellationToken)
    {
        Debug(Schema.BlkdebugEvent.WriteAio);
        return _probedBy != null && offset < FirstSector && data.Length > 0
            ? WriteFirstSectorAsync(_probedBy, offset, data, flags, cancellationToken)
            : _file.WriteAsync(offset, data, flags, cancellationToken);
    }

    private async ValueTask WriteFirstSectorAsync(BlockDriverRegistry registry, long offset, ReadOnlyMemory<byte> data, RequestFlags flags, CancellationToken cancellationToken)
    {
        // What the first sector would hold after this write: the old bytes with the new ones over them.
        var sector = new byte[FirstSector];
        int have = (int)Math.Min(FirstSector, _file.Length);
        if (have > 0)
            await _file.ReadAsync(0, sector.AsMemory(0, have), cancellationToken).ConfigureAwait(false);
        int n = (int)Math.Min(data.Length, FirstSector - offset);
        data.Span[..n].CopyTo(sector.AsSpan((int)offset));
        if (registry.Probe(sector, "").Driver != Schema.BlockdevDriver.Raw)
            throw new BlockException(Errno.EPERM, "Operation not permitted");
        await _file.WriteAsync(offset, data, flags, cancellationToken).ConfigureAwait(false);
    }

    // QEMU's raw raises nothing for zero writes; we raise write_aio so that rules on writes see them too,
    // as they did when the filter raised the event itself.
    protected override ValueTask WriteZeroesCoreAsync(long offset, long length, RequestFlags flags, CancellationToken cancellationToken)
    {
        Debug(Schema.BlkdebugEvent.WriteAio);
        return _file.WriteZeroesAsync(offset, length, flags, cancellationToken);
    }

    protected override ValueTask DiscardCoreAsync(long offset, long length, CancellationToken cancellationToken) =>
        _file.DiscardAsync(offset, length, cancellationToken);

    protected override ValueTask FlushCoreAsync(CancellationToken cancellationToken)
    {
        Debug(Schema.BlkdebugEvent.FlushToOs);
        Debug(Schema.BlkdebugEvent.FlushToDisk);
        return _file.FlushAsync(cancellationToken);
    }

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

    /// <summary>raw has no info of its own: the cluster size and snapshots are its file's (rbd's), as with QEMU's raw.</summary>
    public override async ValueTask<Schema.ImageInfo> GetImageInfoAsync(CancellationToken cancellationToken = default)
    {
        var info = await base.GetImageInfoAsync(cancellationToken).ConfigureAwait(false);
        var file = await _file.GetImageInfoAsync(cancellationToken).ConfigureAwait(false);
        info.ClusterSize ??= file.ClusterSize;
        info.Snapshots ??= file.Snapshots;
        return info;
    }
}
