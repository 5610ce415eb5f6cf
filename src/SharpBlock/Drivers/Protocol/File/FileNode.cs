using Microsoft.Win32.SafeHandles;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Io;
using SharpBlock.Platform;

namespace SharpBlock.Drivers.Protocol.File;

/// <summary>
/// The 'file', 'host_device', 'host_cdrom' and 'host_floppy' protocols: a regular file or a host device
/// through one SafeFileHandle and RandomAccess. With cache.direct the handle is O_DIRECT and requests bounce
/// through aligned native buffers; on a regular file unaligned ones go through a second, buffered handle
/// (the file may grow by such a write, which an aligned bounce could not express), on a device they are
/// read-modify-written in whole logical blocks (FileNode.Device.cs).
/// </summary>
public sealed partial class FileNode : BlockNode, IHostMedium
{
    private SafeFileHandle _handle;
    private SafeFileHandle? _buffered;
    private readonly bool _isBlockDevice;
    private readonly string _driverName;
    private long _length;

    private FileNode(string path, string driverName, SafeFileHandle handle, bool isBlockDevice, long length, NodeSettings settings)
        : base(settings)
    {
        Path = path;
        _driverName = driverName;
        _handle = handle;
        _isBlockDevice = isBlockDevice;
        _length = length;
    }

    public string Path { get; }

    public override string DriverName => _driverName;

    public override string Filename => Path;

    public override long Length => Volatile.Read(ref _length);

    /// <summary>
    /// With O_DIRECT the device's logical block (a regular file: a page, which every file system accepts);
    /// without it the page cache takes any byte range.
    /// </summary>
    public override int RequestAlignment => Settings.Direct ? DirectAlignment : 1;

    private int DirectAlignment => _isBlockDevice ? LogicalBlockSize : AlignedBufferPool.Alignment;

    protected override bool Growable => !_isBlockDevice;

    /// <summary>
    /// Opens a file (or host device) with QEMU-compatible image locks. As QEMU 7.2, 'file' takes regular files
    /// only and the host_* drivers devices only.
    /// </summary>
    public static FileNode Open(string path, NodeSettings settings, string driverName = "file")
    {
        bool host = driverName != "file";
        int flags = (settings.ReadOnly ? LibC.O_RDONLY : LibC.O_RDWR) | LibC.O_CLOEXEC;
        if (settings.Direct)
            flags |= LibC.O_DIRECT;
        // A removable drive opens without a medium only non-blocking; QEMU opens host_cdrom the same way.
        if (IsRemovableDriver(driverName))
            flags |= LibC.O_NONBLOCK;
        int fd = LibC.Open(path, flags, 0);
        if (fd < 0)
        {
            var errno = (Errno)LibC.LastErrno;
            // The file driver's own words; a tool that opened an image over this file names the image before them.
            throw new BlockException(errno, $"Could not open '{path}': {BlockException.Describe(errno)}");
        }

        var handle = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            if (LibC.FStat(fd, out var st) != 0)
                throw new BlockException((Errno)LibC.LastErrno, $"Could not stat '{path}'");
            uint type = LibC.ModeOf(st) & LibC.S_IFMT;
            bool isDevice = type is LibC.S_IFBLK or LibC.S_IFCHR;
            if (!host && type != LibC.S_IFREG)
                throw new BlockException(Errno.EINVAL, $"'file' driver requires '{path}' to be a regular file");
            if (host && !isDevice)
                throw new BlockException(Errno.EINVAL, $"'{driverName}' driver requires '{path}' to be either a character or block device");

            var node = new FileNode(path, driverName, handle, isDevice, isDevice ? DeviceSize(fd) : st.Size, settings);
            if (isDevice)
                node.ProbeDevice(fd);
            Lock(fd, path, settings.ReadOnly, stable: false);
            return node;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>
    /// As QEMU 7: a writer refuses other writers and resizers. A reader shares everything, unless an image
    /// format on top keeps metadata in the file (<paramref name="stable"/>): then it needs the file to hold
    /// still and refuses writers too, except with force-share (qemu-img's -U).
    /// </summary>
    private static void Lock(nint fd, string path, bool readOnly, bool stable)
    {
        var perms = FileLocks.Perm.ConsistentRead;
        var shared = FileLocks.Perm.All;
        if (!readOnly || stable)
            shared &= ~(FileLocks.Perm.Write | FileLocks.Perm.Resize);
        if (!readOnly)
            perms |= FileLocks.Perm.Write | FileLocks.Perm.Resize;
        FileLocks.Acquire(fd, path, perms, shared);
    }

    // Set once a format that keeps metadata in this file sits on top (see RefuseOtherWriters).
    private volatile bool _stable;

    private bool Stable => _stable && !Settings.ForceShare;

    public override void RefuseOtherWriters()
    {
        _stable = true;
        if (ReadOnly && Stable)
            Lock(_handle.DangerousGetHandle(), Path, readOnly: true, stable: true);
    }

    private protected override void OnLastUserGone()
    {
        _stable = false;
        FileLocks.ReleaseAll(_handle.DangerousGetHandle());
    }

    private protected override void OnFirstUser() => Lock(_handle.DangerousGetHandle(), Path, ReadOnly, Stable);

    /// <summary>
    /// Lets write rewrite the file through its path rather than through this node (blockdev-create's creators
    /// write the image file themselves, as qemu-img create does, and some open it as an image to finish it):
    /// the node's image locks are let go meanwhile, so our own second opener is not refused, and taken back
    /// after; then the node learns the file's new size.
    /// </summary>
    public async ValueTask RewriteThroughPathAsync(Func<ValueTask> write)
    {
        nint fd = _handle.DangerousGetHandle();
        FileLocks.ReleaseAll(fd);
        try
        {
            await write().ConfigureAwait(false);
        }
        finally
        {
            Lock(fd, Path, ReadOnly, Stable);
            if (!_isBlockDevice && LibC.FStat(fd, out var st) == 0)
                Volatile.Write(ref _length, st.Size);
        }
    }

    /// <summary>A new descriptor with the new access mode and locks; the old one is closed only once that worked.</summary>
    protected override ValueTask ReopenCoreAsync(bool readOnly, CancellationToken cancellationToken)
    {
        int flags = (readOnly ? LibC.O_RDONLY : LibC.O_RDWR) | LibC.O_CLOEXEC | (Settings.Direct ? LibC.O_DIRECT : 0)
            | (IsRemovableDriver(_driverName) ? LibC.O_NONBLOCK : 0);
        int fd = LibC.Open(Path, flags, 0);
        if (fd < 0)
        {
            var errno = (Errno)LibC.LastErrno;
            throw new BlockException(errno, $"Could not reopen '{Path}': {BlockException.Describe(errno)}");
        }

        var handle = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            // A reader's old descriptor refuses writers, which would include our own new one: it lets go of
            // its locks first and takes them back if the new ones cannot be had, so a failure changes nothing.
            FileLocks.ReleaseAll(_handle.DangerousGetHandle());
            try
            {
                Lock(fd, Path, readOnly, Stable);
            }
            catch
            {
                Lock(_handle.DangerousGetHandle(), Path, ReadOnly, Stable);
                throw;
            }
        }
        catch
        {
            handle.Dispose();
            throw;
        }

        var old = _handle;
        _handle = handle;
        old.Dispose();
        _buffered?.Dispose();
        _buffered = null;
        return ValueTask.CompletedTask;
    }

    private static bool IsAligned(long offset, int length) =>
        ((offset | (long)length) & (AlignedBufferPool.Alignment - 1)) == 0;

    private SafeFileHandle Buffered()
    {
        if (_buffered != null)
            return _buffered;
        int fd = LibC.Open(Path, (ReadOnly ? LibC.O_RDONLY : LibC.O_RDWR) | LibC.O_CLOEXEC, 0);
        if (fd < 0)
            throw new BlockException((Errno)LibC.LastErrno, $"Could not reopen '{Path}' for unaligned I/O");
        var h = new SafeFileHandle(fd, ownsHandle: true);
        if (Interlocked.CompareExchange(ref _buffered, h, null) != null)
            h.Dispose();
        return _buffered;
    }

    protected override async ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        CheckMedium();
        try
        {
            if (!Settings.Direct)
            {
                await ReadFullyAsync(_handle, offset, buffer, cancellationToken).ConfigureAwait(false);
                return;
            }

            if (_isBlockDevice)
            {
                await ReadDeviceDirectAsync(offset, buffer, cancellationToken).ConfigureAwait(false);
                return;
            }

            if (!IsAligned(offset, buffer.Length))
            {
                await ReadFullyAsync(Buffered(), offset, buffer, cancellationToken).ConfigureAwait(false);
                return;
            }

            var bounce = AlignedBufferPool.Shared.Rent();
            try
            {
                for (int done = 0; done < buffer.Length;)
                {
                    int n = Math.Min(AlignedBufferPool.ChunkSize, buffer.Length - done);
                    var chunk = bounce.Memory[..n];
                    await ReadFullyAsync(_handle, offset + done, chunk, cancellationToken).ConfigureAwait(false);
                    chunk.CopyTo(buffer[done..]);
                    done += n;
                }
            }
            finally
            {
                AlignedBufferPool.Shared.Return(bounce);
            }
        }
        catch (Exception ex) when (ex is not BlockException and not OperationCanceledException)
        {
            throw BlockException.Wrap(ex, $"Read from '{Path}' failed");
        }
    }

    /// <summary>Reads until the buffer is full; past the end of the file the rest reads as zeros.</summary>
    private static async ValueTask ReadFullyAsync(SafeFileHandle h, long offset, Memory<byte> buffer, CancellationToken ct)
    {
        while (buffer.Length > 0)
        {
            int n = await RandomAccess.ReadAsync(h, buffer, offset, ct).ConfigureAwait(false);
            if (n <= 0)
            {
                buffer.Span.Clear();
                return;
            }

            offset += n;
            buffer = buffer[n..];
        }
    }

    protected override async ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags, CancellationToken cancellationToken)
    {
        CheckMedium();
        try
        {
            if (!Settings.Direct)
            {
                await RandomAccess.WriteAsync(_handle, data, offset, cancellationToken).ConfigureAwait(false);
            }
            else if (_isBlockDevice)
            {
                await WriteDeviceDirectAsync(offset, data, cancellationToken).ConfigureAwait(false);
            }
            else if (!IsAligned(offset, data.Length))
            {
                await RandomAccess.WriteAsync(Buffered(), data, offset, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                var bounce = AlignedBufferPool.Shared.Rent();
                try
                {
                    for (int done = 0; done < data.Length;)
                    {
                        int n = Math.Min(AlignedBufferPool.ChunkSize, data.Length - done);
                        data.Slice(done, n).CopyTo(bounce.Memory);
                        await RandomAccess.WriteAsync(_handle, bounce.Memory[..n], offset + done, cancellationToken).ConfigureAwait(false);
                        done += n;
                    }
                }
                finally
                {
                    AlignedBufferPool.Shared.Return(bounce);
                }
            }
        }
        catch (Exception ex) when (ex is not BlockException and not OperationCanceledException)
        {
            throw BlockException.Wrap(ex, $"Write to '{Path}' failed");
        }

        GrowTo(offset + data.Length);
        if ((flags & RequestFlags.Fua) != 0)
            await FlushCoreAsync(cancellationToken).ConfigureAwait(false);
    }

    private void GrowTo(long end) => Atomic.Max(ref _length, end);

    protected override async ValueTask WriteZeroesCoreAsync(long offset, long length, RequestFlags flags, CancellationToken cancellationToken)
    {
        CheckMedium();
        if (_isBlockDevice)
        {
            await WriteZeroesDeviceAsync(offset, length, flags, cancellationToken).ConfigureAwait(false);
            return;
        }

        nint fd = _handle.DangerousGetHandle();
        long end = offset + length;
        if ((flags & RequestFlags.MayUnmap) != 0)
        {
            // Punching keeps the size, so a range past the end still needs the file extended.
            long inside = Math.Min(end, Length) - offset;
            if ((inside <= 0 || LibC.FAllocate(fd, LibC.FALLOC_FL_PUNCH_HOLE | LibC.FALLOC_FL_KEEP_SIZE, offset, inside) == 0)
                && (end <= Length || LibC.FTruncate(fd, end) == 0))
            {
                GrowTo(end);
                return;
            }
        }

        if (LibC.FAllocate(fd, LibC.FALLOC_FL_ZERO_RANGE, offset, length) == 0)
        {
            GrowTo(end);
            if ((flags & RequestFlags.Fua) != 0)
                await FlushCoreAsync(cancellationToken).ConfigureAwait(false);
            return;
        }

        int e = LibC.LastErrno;
        if (e == (int)Errno.ENOSPC)
            throw new BlockException(Errno.ENOSPC, $"Write to '{Path}' failed: {BlockException.Describe(Errno.ENOSPC)}");

        await base.WriteZeroesCoreAsync(offset, length, flags, cancellationToken).ConfigureAwait(false);
    }

    protected override ValueTask DiscardCoreAsync(long offset, long length, CancellationToken cancellationToken)
    {
        CheckMedium();
        if (_isBlockDevice)
            return DiscardDeviceAsync(offset, length, cancellationToken);
        long inside = Math.Min(offset + length, Length) - offset;
        if (inside > 0)
            LibC.FAllocate(_handle.DangerousGetHandle(), LibC.FALLOC_FL_PUNCH_HOLE | LibC.FALLOC_FL_KEEP_SIZE, offset, inside);
        return ValueTask.CompletedTask;
    }

    protected override async ValueTask FlushCoreAsync(CancellationToken cancellationToken)
    {
        if (Settings.NoFlush || ReadOnly)
            return;
        int rc = await Task.Run(() => LibC.FDataSync(_handle.DangerousGetHandle()) == 0 ? 0 : LibC.LastErrno, cancellationToken).ConfigureAwait(false);
        if (rc != 0)
            throw new BlockException((Errno)rc, $"Flush of '{Path}' failed: {BlockException.Describe((Errno)rc)}");
    }

    protected override ValueTask<BlockStatus> BlockStatusCoreAsync(long offset, long length, CancellationToken cancellationToken)
    {
        const BlockStatusFlags Base = BlockStatusFlags.Allocated | BlockStatusFlags.OffsetValid;
        if (_isBlockDevice)
            return ValueTask.FromResult(new BlockStatus(Base | BlockStatusFlags.Data, length, offset, this));
        nint fd = _handle.DangerousGetHandle();
        long data = LibC.LSeek(fd, offset, LibC.SEEK_DATA);
        if (data < 0)
        {
            // ENXIO: no data from here to the end of the file. Anything else: we cannot tell, so say data.
            bool hole = LibC.LastErrno == (int)Errno.ENXIO;
            return ValueTask.FromResult(new BlockStatus(Base | (hole ? BlockStatusFlags.Zero : BlockStatusFlags.Data), length, offset, this));
        }

        if (data > offset)
            return ValueTask.FromResult(new BlockStatus(Base | BlockStatusFlags.Zero, Math.Min(length, data - offset), offset, this));
        long hole2 = LibC.LSeek(fd, offset, LibC.SEEK_HOLE);
        long run = hole2 > offset ? Math.Min(length, hole2 - offset) : length;
        return ValueTask.FromResult(new BlockStatus(Base | BlockStatusFlags.Data, run, offset, this));
    }

    protected override ValueTask TruncateCoreAsync(long size, CancellationToken cancellationToken)
    {
        if (_isBlockDevice)
        {
            if (size > Length)
                throw new BlockException(Errno.EINVAL, $"Cannot grow device '{Path}'");
            return ValueTask.CompletedTask;
        }

        if (LibC.FTruncate(_handle.DangerousGetHandle(), size) != 0)
        {
            var e = (Errno)LibC.LastErrno;
            throw new BlockException(e, $"Failed to resize '{Path}': {BlockException.Describe(e)}");
        }

        Volatile.Write(ref _length, size);
        return ValueTask.CompletedTask;
    }

    public override ValueTask<long> GetAllocatedFileSizeAsync(CancellationToken cancellationToken = default)
    {
        if (LibC.FStat(_handle.DangerousGetHandle(), out var st) != 0)
            return ValueTask.FromResult(-1L);
        return ValueTask.FromResult(st.Blocks * 512);
    }

    protected override ValueTask CloseCoreAsync()
    {
        _buffered?.Dispose();
        _handle.Dispose();
        return ValueTask.CompletedTask;
    }
}
