using System.Runtime.InteropServices;
using SharpBlock.Graph;
using SharpBlock.Io;

namespace SharpBlock.Drivers.Protocol.Rbd;

/// <summary>
/// The 'rbd' protocol driver: the bytes of an image in a Ceph pool, through librbd's asynchronous calls. Block
/// status comes from rbd_diff_iterate2 over whole objects, so copies out of rbd stay sparse.
/// </summary>
internal sealed partial class RbdNode : BlockNode
{
    private readonly RbdImage _image;
    private readonly string _filename;
    private long _length;

    private RbdNode(RbdImage image, string filename, NodeSettings settings)
        : base(settings)
    {
        _image = image;
        _filename = filename;
        _length = image.GetSize();
    }

    public override string DriverName => "rbd";

    public override string Filename => _filename;

    public override long Length => _length;

    public static async ValueTask<BlockNode> OpenAsync(BlockOpenContext ctx, CancellationToken cancellationToken)
    {
        var o = ctx.Options.Rbd ?? throw new Errors.BlockException(Errors.Errno.EINVAL, "Missing rbd options");
        string? key = o.KeySecret == null ? null : ctx.Graph.Secrets.Get(o.KeySecret);
        var image = await RbdImage.OpenAsync(o, key, ctx.Settings.ReadOnly).ConfigureAwait(false);
        return new RbdNode(image, RbdFilename.Format(o), ctx.Settings);
    }

    protected override async ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        long n = await RbdCompletion.Run(buffer, $"error reading rbd image '{_image.Display}'",
            (c, p) => LibRbd.AioRead(_image.Handle, (ulong)offset, (nuint)buffer.Length, p, c)).ConfigureAwait(false);
        // librbd answers a read past the end short; the rest reads as zeroes.
        if (n < buffer.Length)
            buffer.Span[(int)n..].Clear();
    }

    protected override async ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags, CancellationToken cancellationToken)
    {
        await RbdCompletion.Run(data, $"error writing rbd image '{_image.Display}'",
            (c, p) => LibRbd.AioWrite(_image.Handle, (ulong)offset, (nuint)data.Length, p, c)).ConfigureAwait(false);
        if ((flags & RequestFlags.Fua) != 0)
            await FlushCoreAsync(cancellationToken).ConfigureAwait(false);
    }

    protected override async ValueTask WriteZeroesCoreAsync(long offset, long length, RequestFlags flags, CancellationToken cancellationToken)
    {
        // librbd zeroes without writing data (whole objects are dropped), so it is fast whether or not we may unmap.
        const long Max = 1L << 30;
        while (length > 0)
        {
            long n = Math.Min(length, Max);
            long at = offset;
            await RbdCompletion.Run(default, $"error zeroing rbd image '{_image.Display}'",
                (c, _) => LibRbd.AioWriteZeroes(_image.Handle, (ulong)at, (nuint)n, c, 0, 0)).ConfigureAwait(false);
            offset += n;
            length -= n;
        }

        if ((flags & RequestFlags.Fua) != 0)
            await FlushCoreAsync(cancellationToken).ConfigureAwait(false);
    }

    protected override async ValueTask DiscardCoreAsync(long offset, long length, CancellationToken cancellationToken) =>
        await RbdCompletion.Run(default, $"error discarding on rbd image '{_image.Display}'",
            (c, _) => LibRbd.AioDiscard(_image.Handle, (ulong)offset, (ulong)length, c)).ConfigureAwait(false);

    protected override async ValueTask FlushCoreAsync(CancellationToken cancellationToken)
    {
        if (ReadOnly)
            return;
        await RbdCompletion.Run(default, $"error flushing rbd image '{_image.Display}'",
            (c, _) => LibRbd.AioFlush(_image.Handle, c)).ConfigureAwait(false);
    }

    protected override async ValueTask<BlockStatus> BlockStatusCoreAsync(long offset, long length, CancellationToken cancellationToken)
    {
        // diff_iterate2 calls back synchronously; it reports the objects that hold data, whole, in order.
        var (dataAt, dataLength) = await Task.Run(() => FirstExtent(offset, length), cancellationToken).ConfigureAwait(false);
        const BlockStatusFlags Base = BlockStatusFlags.Allocated | BlockStatusFlags.OffsetValid;
        if (dataLength == 0 || dataAt >= offset + length)
            return new BlockStatus(Base | BlockStatusFlags.Zero, length, offset, this);
        if (dataAt > offset)
            return new BlockStatus(Base | BlockStatusFlags.Zero, dataAt - offset, offset, this);
        long run = Math.Min(dataAt + dataLength, offset + length) - offset;
        return new BlockStatus(Base | BlockStatusFlags.Data, run, offset, this);
    }

    /// <summary>The first run of data at or after <paramref name="offset"/> (merged with what follows it), or length 0.</summary>
    private unsafe (long At, long Length) FirstExtent(long offset, long length)
    {
        var state = new ExtentSearch();
        var handle = GCHandle.Alloc(state);
        try
        {
            int r = LibRbd.DiffIterate2(_image.Handle, null, (ulong)offset, (ulong)length, 1, 1, &OnExtent, GCHandle.ToIntPtr(handle));
            // Stopping early is our own -1 (ECANCELED from librbd's point of view); anything else failed.
            if (r < 0 && !state.Stopped)
                throw RbdErrors.Of(r, $"error reading the allocation of rbd image '{_image.Display}'");
        }
        finally
        {
            handle.Free();
        }

        if (state.Length == 0)
            return (0, 0);
        long at = Math.Max(state.At, offset);
        return (at, state.At + state.Length - at);
    }

    private sealed class ExtentSearch
    {
        public long At;
        public long Length;
        public bool Stopped;
    }

    [UnmanagedCallersOnly]
    private static int OnExtent(ulong offset, nuint length, int exists, nint arg)
    {
        var s = (ExtentSearch)GCHandle.FromIntPtr(arg).Target!;
        if (exists == 0)
            return s.Length == 0 ? 0 : Stop(s);
        if (s.Length == 0)
        {
            s.At = (long)offset;
            s.Length = (long)length;
            return 0;
        }

        if ((long)offset == s.At + s.Length)
        {
            s.Length += (long)length;
            return 0;
        }

        return Stop(s);
    }

    private static int Stop(ExtentSearch s)
    {
        s.Stopped = true;
        return -1;
    }

    protected override async ValueTask TruncateCoreAsync(long size, CancellationToken cancellationToken)
    {
        await Task.Run(() => RbdErrors.Check(LibRbd.Resize(_image.Handle, (ulong)size), $"error resizing rbd image '{_image.Display}'"), cancellationToken).ConfigureAwait(false);
        _length = size;
    }

    public override ValueTask<long> GetAllocatedFileSizeAsync(CancellationToken cancellationToken = default) => ValueTask.FromResult(-1L);

    protected override ValueTask CloseCoreAsync()
    {
        _image.Dispose();
        return ValueTask.CompletedTask;
    }
}
