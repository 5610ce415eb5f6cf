using System.IO.Pipelines;
using SharpBlock.Nbd.Protocol;

namespace SharpBlock.Nbd.Server;

/// <summary>
/// One client connection: the fixed-newstyle negotiation, then the transmission loop. It reads frames from
/// a pipe over the stream and writes replies under one lock, so requests can run and answer in any order.
/// Split by phase: NbdSession.Handshake.cs, NbdSession.Transmission.cs.
/// </summary>
internal sealed partial class NbdSession
{
    private readonly NbdServer _server;
    private readonly Stream _stream;
    private readonly PipeReader _reader;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly CancellationTokenSource _closing = new();
    private readonly InFlightLimiter _limiter;
    private readonly string _peer;
    private bool _noZeroes;
    private bool _structured;
    // The contexts NBD_OPT_SET_META_CONTEXT selected, for the export it named; BLOCK_STATUS answers each.
    private MetaContext[] _contexts = [];
    private string? _metaContextExport;
    private volatile bool _writeFailed;

    public NbdSession(NbdServer server, Stream stream, string peer)
    {
        _server = server;
        _stream = stream;
        _peer = peer;
        _reader = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 256 << 10, minimumReadSize: 64 << 10, leaveOpen: true));
        _limiter = new InFlightLimiter(server.Limits.MaxRequestsInFlight, server.Limits.MaxBytesInFlight);
    }

    /// <summary>The export this connection is attached to, once negotiation chose one.</summary>
    public NbdExport? Export
    {
        get => Volatile.Read(ref _export);
        private set => Volatile.Write(ref _export, value);
    }

    private NbdExport? _export;

    public string Peer => _peer;

    public async Task RunAsync(CancellationToken stopping)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(stopping, _closing.Token);
        var ct = linked.Token;
        try
        {
            NbdExport? export;
            using (var handshakeTimeout = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                handshakeTimeout.CancelAfter(_server.Limits.HandshakeTimeout);
                export = await NegotiateAsync(handshakeTimeout.Token).ConfigureAwait(false);
            }

            if (export != null)
            {
                // Attached first, checked second: an export taken away meanwhile either sees this connection
                // among its users and ends it, or this check sees the export gone.
                Export = export;
                if (_server.IsPublished(export))
                    await TransmitAsync(export, ct).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is NbdProtocolException or IOException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
        {
            // A broken or hostile peer, a vanished socket, or a stop: this connection ends, nothing else.
        }
        finally
        {
            // Requests already taken keep running to completion: an acknowledged write must have reached
            // the device even if nobody is left to read the acknowledgement.
            await _limiter.WaitIdleAsync().ConfigureAwait(false);
            await _reader.CompleteAsync().ConfigureAwait(false);
            await _stream.DisposeAsync().ConfigureAwait(false);
            _closing.Dispose();
        }
    }

    /// <summary>Ends the connection from our side (nbd-server-stop, export removed).</summary>
    public ValueTask CloseAsync()
    {
        try
        {
            _closing.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }

        _reader.CancelPendingRead();
        // Closing the stream also frees a reply write that a client which stopped reading has blocked;
        // such a client must not be able to hold nbd-server-stop or the daemon's exit.
        return _stream.DisposeAsync();
    }

    /// <summary>Writes one whole message under the write lock; a failed write only ends this connection.</summary>
    private async ValueTask SendAsync(ReadOnlyMemory<byte> first, ReadOnlyMemory<byte> second = default)
    {
        if (_writeFailed)
            return;
        await _writeLock.WaitAsync().ConfigureAwait(false);
        try
        {
            await _stream.WriteAsync(first).ConfigureAwait(false);
            if (!second.IsEmpty)
                await _stream.WriteAsync(second).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or OperationCanceledException)
        {
            _writeFailed = true;
            _reader.CancelPendingRead();
        }
        finally
        {
            _writeLock.Release();
        }
    }
}
