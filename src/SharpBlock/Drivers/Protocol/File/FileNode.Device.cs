using SharpBlock.Errors;
using SharpBlock.Io;
using SharpBlock.Platform;

namespace SharpBlock.Drivers.Protocol.File;

/// <summary>
/// What a host device adds to the file protocol: its size and block sizes from the block ioctls, O_DIRECT
/// requests in whole logical blocks, discard and write-zeroes by the device's own commands, and the medium of
/// a removable drive (host_cdrom, host_floppy).
/// </summary>
public sealed partial class FileNode
{
    private const int DefaultBlockSize = 512;

    private int _logicalBlockSize = DefaultBlockSize;
    private int _physicalBlockSize = DefaultBlockSize;

    // A read-modify-write of a partial logical block must not interleave with another write to that block,
    // or one of them is lost; every O_DIRECT write to a device takes its whole blocks here.
    private readonly RangeLock _deviceBlocks = new();

    /// <summary>
    /// The device's logical block (BLKSSZGET): the unit O_DIRECT, discard and write-zeroes work in. A regular
    /// file (and a device that does not say) reports 512, as QEMU's default.
    /// </summary>
    public int LogicalBlockSize => _logicalBlockSize;

    /// <summary>The device's physical block (BLKPBSZGET): writes smaller than it cost a read-modify-write in the drive.</summary>
    public int PhysicalBlockSize => _physicalBlockSize;

    /// <summary>True for the host_cdrom and host_floppy drivers, whose drive may have no medium or an open tray.</summary>
    public bool IsRemovable => IsRemovableDriver(_driverName);

    private bool IsCdrom => _driverName == "host_cdrom";

    private static bool IsRemovableDriver(string driverName) => driverName is "host_cdrom" or "host_floppy";

    /// <summary>A block device's size; a character device (which has none) reports what lseek finds.</summary>
    private static long DeviceSize(nint fd)
    {
        long size = LinuxIoctl.GetSize64(fd);
        return size >= 0 ? size : Math.Max(0, LibC.LSeek(fd, 0, LibC.SEEK_END));
    }

    private void ProbeDevice(nint fd)
    {
        int logical = LinuxIoctl.GetBlockSize(fd, LinuxIoctl.BLKSSZGET);
        if (logical >= DefaultBlockSize && (logical & (logical - 1)) == 0 && logical <= AlignedBufferPool.Alignment)
            _logicalBlockSize = logical;
        int physical = LinuxIoctl.GetBlockSize(fd, LinuxIoctl.BLKPBSZGET);
        _physicalBlockSize = physical >= _logicalBlockSize ? physical : _logicalBlockSize;
    }

    // ---- The medium of a removable drive ----------------------------------------------------------------

    /// <summary>
    /// Whether the drive holds a medium. A CD-ROM drive is asked (CDROM_DRIVE_STATUS) on every request as
    /// QEMU 7.2 asks it, so a device that is no CD-ROM drive at all (a loop device) has no medium; a floppy
    /// drive and a fixed device always do.
    /// </summary>
    public bool MediumInserted => !IsCdrom || DriveStatus() == LinuxIoctl.CDS_DISC_OK;

    /// <summary>The CD-ROM drive's own tray state, or null when the device cannot say (not a CD-ROM drive).</summary>
    public bool? HostTrayOpen
    {
        get
        {
            if (!IsCdrom)
                return null;
            int status = DriveStatus();
            return status < 0 ? null : status == LinuxIoctl.CDS_TRAY_OPEN;
        }
    }

    private int DriveStatus() => LinuxIoctl.Value(_handle.DangerousGetHandle(), LinuxIoctl.CDROM_DRIVE_STATUS, LinuxIoctl.CDSL_CURRENT);

    private void CheckMedium()
    {
        if (IsCdrom && !MediumInserted)
            throw new BlockException(Errno.ENOMEDIUM, BlockException.Describe(Errno.ENOMEDIUM));
    }

    /// <summary>
    /// Opens (or closes) the drive's tray: CDROMEJECT / CDROMCLOSETRAY on a CD-ROM drive, FDEJECT on a floppy
    /// drive. Returns the errno the drive answered (0 when it moved); like QEMU, a drive that cannot eject
    /// does not stop the guest-visible eject, so callers only report it.
    /// </summary>
    public Errno EjectHostMedium(bool eject)
    {
        uint request;
        if (IsCdrom)
            request = eject ? LinuxIoctl.CDROMEJECT : LinuxIoctl.CDROMCLOSETRAY;
        else if (_driverName == "host_floppy" && eject)
            request = LinuxIoctl.FDEJECT;
        else
            return Errno.ENOTTY;
        int rc = LinuxIoctl.Value(_handle.DangerousGetHandle(), request, 0);
        return rc < 0 ? (Errno)(-rc) : Errno.None;
    }

    /// <summary>Locks or unlocks a CD-ROM drive's door (CDROM_LOCKDOOR); the errno the drive answered.</summary>
    public Errno LockHostMedium(bool locked)
    {
        if (!IsCdrom)
            return Errno.ENOTTY;
        int rc = LinuxIoctl.Value(_handle.DangerousGetHandle(), LinuxIoctl.CDROM_LOCKDOOR, locked ? 1 : 0);
        return rc < 0 ? (Errno)(-rc) : Errno.None;
    }

    // ---- O_DIRECT in whole logical blocks ------------------------------------------------------------------

    private long AlignDown(long v) => v & ~(long)(_logicalBlockSize - 1);

    private long AlignUp(long v) => AlignDown(v + _logicalBlockSize - 1);

    /// <summary>Reads the logical blocks that cover the request through the bounce buffer and copies out the part asked for.</summary>
    private async ValueTask ReadDeviceDirectAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        long end = offset + buffer.Length;
        var bounce = AlignedBufferPool.Shared.Rent();
        try
        {
            for (long pos = AlignDown(offset), stop = AlignUp(end); pos < stop;)
            {
                int n = (int)Math.Min(AlignedBufferPool.ChunkSize, stop - pos);
                await ReadFullyAsync(_handle, pos, bounce.Memory[..n], cancellationToken).ConfigureAwait(false);
                long from = Math.Max(pos, offset);
                long to = Math.Min(pos + n, end);
                bounce.Memory.Slice((int)(from - pos), (int)(to - from)).CopyTo(buffer[(int)(from - offset)..]);
                pos += n;
            }
        }
        finally
        {
            AlignedBufferPool.Shared.Return(bounce);
        }
    }

    /// <summary>
    /// Writes through the bounce buffer in whole logical blocks; a block the request covers only in part is
    /// read first, with its blocks held so no other write to them runs in between.
    /// </summary>
    private async ValueTask WriteDeviceDirectAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        long end = offset + data.Length;
        long start = AlignDown(offset);
        long stop = AlignUp(end);
        int block = _logicalBlockSize;
        using var held = await _deviceBlocks.AcquireAsync(start, stop).ConfigureAwait(false);
        var bounce = AlignedBufferPool.Shared.Rent();
        try
        {
            for (long pos = start; pos < stop;)
            {
                int n = (int)Math.Min(AlignedBufferPool.ChunkSize, stop - pos);
                if (pos < offset)
                    await ReadFullyAsync(_handle, pos, bounce.Memory[..block], cancellationToken).ConfigureAwait(false);
                if (pos + n > end)
                    await ReadFullyAsync(_handle, pos + n - block, bounce.Memory.Slice(n - block, block), cancellationToken).ConfigureAwait(false);
                long from = Math.Max(pos, offset);
                long to = Math.Min(pos + n, end);
                data.Slice((int)(from - offset), (int)(to - from)).CopyTo(bounce.Memory[(int)(from - pos)..]);
                await RandomAccess.WriteAsync(_handle, bounce.Memory[..n], pos, cancellationToken).ConfigureAwait(false);
                pos += n;
            }
        }
        finally
        {
            AlignedBufferPool.Shared.Return(bounce);
        }
    }

    // ---- Discard and write-zeroes by the device's commands -----------------------------------------------

    /// <summary>
    /// BLKDISCARD over the whole logical blocks inside the range: the kernel refuses a partial block, and a
    /// discard is only advice, so the edges are left alone. A device that cannot discard ignores it, as QEMU's
    /// does once the ioctl says so.
    /// </summary>
    private async ValueTask DiscardDeviceAsync(long offset, long length, CancellationToken cancellationToken)
    {
        long start = AlignUp(offset);
        long stop = AlignDown(offset + length);
        if (stop <= start)
            return;
        using var held = await _deviceBlocks.AcquireAsync(start, stop).ConfigureAwait(false);
        int e = await RangeIoctlAsync(LinuxIoctl.BLKDISCARD, start, stop - start, cancellationToken).ConfigureAwait(false);
        if (e != 0 && !IsUnsupported(e))
            throw new BlockException((Errno)e, $"Discard on '{Path}' failed: {BlockException.Describe((Errno)e)}");
    }

    /// <summary>
    /// Zeroes the whole logical blocks of the range by the device: with may-unmap by
    /// fallocate(PUNCH_HOLE|KEEP_SIZE), which on a block device deallocates only where the device guarantees
    /// zeroes after it, else (and when that is not supported) by BLKZEROOUT. Plain BLKDISCARD never serves
    /// here: a device may read back old data after it. The partial blocks at the edges, and a device that can
    /// do neither, are written with zeros through the ordinary path.
    /// </summary>
    private async ValueTask WriteZeroesDeviceAsync(long offset, long length, RequestFlags flags, CancellationToken cancellationToken)
    {
        long end = offset + length;
        long start = AlignUp(offset);
        long stop = AlignDown(end);
        if (stop <= start)
        {
            await base.WriteZeroesCoreAsync(offset, length, flags, cancellationToken).ConfigureAwait(false);
            return;
        }

        if (start > offset)
            await base.WriteZeroesCoreAsync(offset, start - offset, flags, cancellationToken).ConfigureAwait(false);
        if (end > stop)
            await base.WriteZeroesCoreAsync(stop, end - stop, flags, cancellationToken).ConfigureAwait(false);

        bool done;
        using (await _deviceBlocks.AcquireAsync(start, stop).ConfigureAwait(false))
        {
            done = (flags & RequestFlags.MayUnmap) != 0 && await PunchAsync(start, stop - start, cancellationToken).ConfigureAwait(false);
            // BLKZEROOUT may fall back to writing zeros inside the kernel: not the fast path no-fallback asks for.
            if (!done && (flags & RequestFlags.NoFallback) == 0)
            {
                int e = await RangeIoctlAsync(LinuxIoctl.BLKZEROOUT, start, stop - start, cancellationToken).ConfigureAwait(false);
                if (e != 0 && !IsUnsupported(e))
                    throw new BlockException((Errno)e, $"Write to '{Path}' failed: {BlockException.Describe((Errno)e)}");
                done = e == 0;
            }
        }

        if (!done)
            await base.WriteZeroesCoreAsync(start, stop - start, flags, cancellationToken).ConfigureAwait(false);
        else if ((flags & RequestFlags.Fua) != 0)
            await FlushCoreAsync(cancellationToken).ConfigureAwait(false);
    }

    private Task<bool> PunchAsync(long offset, long length, CancellationToken cancellationToken) =>
        Task.Run(
            () => LibC.FAllocate(_handle.DangerousGetHandle(), LibC.FALLOC_FL_PUNCH_HOLE | LibC.FALLOC_FL_KEEP_SIZE, offset, length) == 0,
            cancellationToken);

    // The device works through a large range for as long as it takes; a pool thread waits, not the caller's.
    private Task<int> RangeIoctlAsync(uint request, long offset, long length, CancellationToken cancellationToken) =>
        Task.Run(() => LinuxIoctl.RangeRequest(_handle.DangerousGetHandle(), request, offset, length), cancellationToken);

    private static bool IsUnsupported(int errno) =>
        errno is (int)Errno.EOPNOTSUPP or (int)Errno.ENOTTY or (int)Errno.ENODEV or (int)Errno.ENOSYS or (int)Errno.EINVAL;
}
