using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Io;
using SharpBlock.Nbd.Protocol;

namespace SharpBlock.Nbd.Client;

/// <summary>
/// The 'nbd' protocol driver: a node whose bytes live in an export of an NBD server. Requests become NBD
/// commands on one connection (split at the server's maximum payload); they run concurrently and the
/// server may answer them in any order.
/// </summary>
public sealed class NbdClientNode : BlockNode
{
    private readonly NbdConnection _conn;
    private readonly string _filename;

    private NbdClientNode(NbdConnection conn, string filename, NodeSettings settings)
        : base(settings)
    {
        _conn = conn;
        _filename = filename;
    }

    public override string DriverName => "nbd";

    public override string Filename => _filename;

    public override long Length => _conn.Size;

    public override bool HasDriverInfo => false;

    internal static async ValueTask<NbdClientNode> OpenAsync(NbdServerAddress address, string exportName, NodeSettings settings, CancellationToken cancellationToken)
    {
        var conn = await NbdConnection.ConnectAsync(address.EndPoint, address.Display, exportName, cancellationToken).ConfigureAwait(false);
        if (conn.Has(NbdTransmissionFlags.ReadOnly) && !settings.ReadOnly)
        {
            await conn.DisposeAsync().ConfigureAwait(false);
            throw new BlockException(Errno.EPERM, "NBD export is read-only");
        }

        return new NbdClientNode(conn, address.Url(exportName), settings);
    }

    protected override async ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        int max = _conn.MaxPayload;
        if (buffer.Length <= max)
        {
            await _conn.RequestAsync(NbdCommand.Read, NbdCommandFlags.None, offset, (uint)buffer.Length, readBuffer: buffer).ConfigureAwait(false);
            return;
        }

        // Pieces of a large read go out together; the server works on them in parallel.
        var parts = new List<Task>();
        for (int done = 0; done < buffer.Length; done += max)
        {
            int n = Math.Min(max, buffer.Length - done);
            parts.Add(_conn.RequestAsync(NbdCommand.Read, NbdCommandFlags.None, offset + done, (uint)n, readBuffer: buffer.Slice(done, n)).AsTask());
        }

        await Task.WhenAll(parts).ConfigureAwait(false);
    }

    protected override async ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags, CancellationToken cancellationToken)
    {
        var nf = (flags & RequestFlags.Fua) != 0 && _conn.Has(NbdTransmissionFlags.SendFua) ? NbdCommandFlags.Fua : NbdCommandFlags.None;
        int max = _conn.MaxPayload;
        for (int done = 0; done < data.Length; done += max)
        {
            int n = Math.Min(max, data.Length - done);
            await _conn.RequestAsync(NbdCommand.Write, nf, offset + done, (uint)n, writeData: data.Slice(done, n)).ConfigureAwait(false);
        }

        if ((flags & RequestFlags.Fua) != 0 && nf == NbdCommandFlags.None)
            await FlushCoreAsync(cancellationToken).ConfigureAwait(false);
    }

    protected override async ValueTask WriteZeroesCoreAsync(long offset, long length, RequestFlags flags, CancellationToken cancellationToken)
    {
        if (!_conn.Has(NbdTransmissionFlags.SendWriteZeroes)
            || ((flags & RequestFlags.NoFallback) != 0 && !_conn.Has(NbdTransmissionFlags.SendFastZero)))
        {
            await base.WriteZeroesCoreAsync(offset, length, flags, cancellationToken).ConfigureAwait(false);
            return;
        }

        var nf = NbdCommandFlags.None;
        if ((flags & RequestFlags.MayUnmap) == 0)
            nf |= NbdCommandFlags.NoHole;
        if ((flags & RequestFlags.NoFallback) != 0)
            nf |= NbdCommandFlags.FastZero;
        if ((flags & RequestFlags.Fua) != 0 && _conn.Has(NbdTransmissionFlags.SendFua))
            nf |= NbdCommandFlags.Fua;
        // The length field is 32 bits; stay on a 1 MiB boundary below it.
        const long Max = 0xFFF00000;
        while (length > 0)
        {
            uint n = (uint)Math.Min(length, Max);
            await _conn.RequestAsync(NbdCommand.WriteZeroes, nf, offset, n).ConfigureAwait(false);
            offset += n;
            length -= n;
        }

        if ((flags & RequestFlags.Fua) != 0 && (nf & NbdCommandFlags.Fua) == 0)
            await FlushCoreAsync(cancellationToken).ConfigureAwait(false);
    }

    protected override async ValueTask DiscardCoreAsync(long offset, long length, CancellationToken cancellationToken)
    {
        if (!_conn.Has(NbdTransmissionFlags.SendTrim))
            return;
        const long Max = 0xFFF00000;
        while (length > 0)
        {
            uint n = (uint)Math.Min(length, Max);
            await _conn.RequestAsync(NbdCommand.Trim, NbdCommandFlags.None, offset, n).ConfigureAwait(false);
            offset += n;
            length -= n;
        }
    }

    protected override async ValueTask FlushCoreAsync(CancellationToken cancellationToken)
    {
        // Closing a node whose connection is already gone has nowhere to flush to; the requests that
        // were lost already failed with EIO.
        if (IsClosed && _conn.IsBroken)
            return;
        if (_conn.Has(NbdTransmissionFlags.SendFlush) && !ReadOnly)
            await _conn.RequestAsync(NbdCommand.Flush, NbdCommandFlags.None, 0, 0).ConfigureAwait(false);
    }

    protected override async ValueTask<BlockStatus> BlockStatusCoreAsync(long offset, long length, CancellationToken cancellationToken)
    {
        if (_conn.BaseAllocationId == null)
            return new BlockStatus(BlockStatusFlags.Data | BlockStatusFlags.Allocated, length);
        uint n = (uint)Math.Min(length, 0x80000000L);
        var ext = await _conn.RequestAsync(NbdCommand.BlockStatus, NbdCommandFlags.ReqOne, offset, n).ConfigureAwait(false);
        if (ext is not { } e || e.Length == 0)
            return new BlockStatus(BlockStatusFlags.Data | BlockStatusFlags.Allocated, length);
        var f = BlockStatusFlags.Allocated;
        if ((e.Flags & (uint)NbdAllocationFlags.Hole) == 0)
            f |= BlockStatusFlags.Data;
        if ((e.Flags & (uint)NbdAllocationFlags.Zero) != 0)
            f |= BlockStatusFlags.Zero;
        return new BlockStatus(f, Math.Min(e.Length, length));
    }

    public override ValueTask<long> GetAllocatedFileSizeAsync(CancellationToken cancellationToken = default) => ValueTask.FromResult(-1L);

    protected override ValueTask CloseCoreAsync() => _conn.DisposeAsync();
}
