using System.Buffers;
using System.Runtime.ExceptionServices;
using SharpBlock.Drivers;
using SharpBlock.Graph;
using SharpBlock.Io;

namespace SharpBlock.Copy;

/// <summary>
/// The copy loop of convert: workers claim the next piece (block status of the source decides its kind
/// without reading it), read it into their own buffer, find the zero runs in the same pass, compress when
/// asked, and write. Claims are serialised and numbered; without -W each worker waits for its number
/// before writing, so reads and compression overlap while the target still sees ascending writes.
/// </summary>
public sealed class ConvertCopier
{
    /// <summary>Largest piece: big sequential requests, and a bounded buffer per worker.</summary>
    private const int MaxChunk = 2 << 20;

    private enum PieceKind
    {
        /// <summary>Nothing to do: the target already reads the same (zero-initialised, or its backing file).</summary>
        Skip,

        /// <summary>Zeros the target must be told about.</summary>
        Zero,

        /// <summary>Zeros to write as data (-S 0) without reading the source.</summary>
        FillZero,

        Data,
    }

    private readonly record struct Piece(long Offset, int Length, PieceKind Kind, long Turn);

    private readonly BlockNode _source;
    private readonly BlockNode _target;
    private readonly ICompressedWrites? _compressTarget;
    private readonly ConvertSettings _s;
    private readonly long _size;
    private readonly int _chunk;
    private readonly int _zeroGranularity;
    private readonly SemaphoreSlim _claim = new(1, 1);
    private readonly ConvertWriteTurns _turns = new();
    private long _next;
    private long _nextTurn;
    private long _done;
    private volatile bool _failed;
    private Exception? _error;
    private CancellationToken _cancel;

    public ConvertCopier(BlockNode source, BlockNode target, ConvertSettings settings)
    {
        _source = source;
        _target = target;
        _s = settings;
        _size = source.Length;
        int unit = target is IClusteredImage c ? c.ClusterSize : 4096;
        _compressTarget = settings.Compress || target is ICompressedWrites { CompressedOnly: true } ? target as ICompressedWrites : null;
        // A compressed cluster is written whole and alone; everything else in cluster-aligned pieces so
        // no piece allocates half a cluster that the next one has to copy-on-write.
        _chunk = _compressTarget != null ? unit : Math.Max(MaxChunk / unit * unit, unit);
        // Zero detection works on whole target clusters: a zero hole inside a cluster would only turn one
        // allocating write into two.
        _zeroGranularity = unit;
    }

    /// <summary>
    /// Copies the whole source; the first failure ends every worker and is thrown. Cancellation is honoured
    /// between pieces (and in reads), never inside a write, so the target holds whole pieces only.
    /// </summary>
    public async Task RunAsync(CancellationToken cancellationToken = default)
    {
        _cancel = cancellationToken;
        var workers = new Task[Math.Max(1, _s.Streams)];
        for (int i = 0; i < workers.Length; i++)
            workers[i] = Task.Run(WorkerAsync);
        try
        {
            await Task.WhenAll(workers).ConfigureAwait(false);
        }
        catch when (_error != null)
        {
            // The workers woken by the failure end cancelled; the error to report is the one that stopped them.
            ExceptionDispatchInfo.Throw(_error);
        }

        _s.Progress?.Done();
    }

    private async Task WorkerAsync()
    {
        byte[] buf = ArrayPool<byte>.Shared.Rent(_chunk);
        byte[]? packed = _compressTarget != null ? ArrayPool<byte>.Shared.Rent(_chunk) : null;
        try
        {
            while (!_failed)
            {
                _cancel.ThrowIfCancellationRequested();
                var p = await ClaimAsync().ConfigureAwait(false);
                if (p.Length == 0)
                    return;
                var data = buf.AsMemory(0, p.Length);
                int packedLength = -1;
                if (p.Kind == PieceKind.Data)
                {
                    await _source.ReadAsync(p.Offset, data, _cancel).ConfigureAwait(false);
                    if (_compressTarget != null && IsWholeCluster(p) && !IsZeroSkippable(data.Span))
                        packedLength = _compressTarget.CompressCluster(data.Span, packed);
                }
                else if (p.Kind == PieceKind.FillZero)
                {
                    data.Span.Clear();
                }

                if (p.Turn >= 0)
                {
                    if (!_s.OutOfOrder)
                        await _turns.WaitAsync(p.Turn).ConfigureAwait(false);
                    await WritePieceAsync(p, data, packedLength > 0 ? packed.AsMemory(0, packedLength) : default).ConfigureAwait(false);
                    if (!_s.OutOfOrder)
                        _turns.Done(p.Turn);
                }

                Account(p.Length);
            }
        }
        catch (Exception ex)
        {
            if (ex is not OperationCanceledException)
                Interlocked.CompareExchange(ref _error, ex, null);
            _failed = true;
            _turns.Fail();
            throw;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buf);
            if (packed != null)
                ArrayPool<byte>.Shared.Return(packed);
        }
    }

    /// <summary>The next piece in source order, its kind from block status; Length 0 when the copy is done.</summary>
    private async ValueTask<Piece> ClaimAsync()
    {
        await _claim.WaitAsync().ConfigureAwait(false);
        try
        {
            long offset = _next;
            if (offset >= _size || _failed)
                return default;
            long pieceEnd = Math.Min(_size, (offset / _chunk * _chunk) + _chunk);
            var st = await BlockStatusAbove.GetAsync(_source, null, offset, pieceEnd - offset).ConfigureAwait(false);
            long len = st.Length;
            var kind = Classify(st, ref len, pieceEnd - offset);
            _next = offset + len;
            long turn = kind == PieceKind.Skip ? -1 : _nextTurn++;
            return new Piece(offset, (int)len, kind, turn);
        }
        finally
        {
            _claim.Release();
        }
    }

    private PieceKind Classify(LayeredStatus st, ref long len, long toPieceEnd)
    {
        if (_s.TopOnly && st.Depth > 0)
            return PieceKind.Skip;
        if (!st.IsZero)
        {
            if (_compressTarget != null)
                len = toPieceEnd;
            return PieceKind.Data;
        }

        if (_s.TopOnly)
            return PieceKind.Zero;
        if (_compressTarget != null && (len < toPieceEnd || _s.MinSparse == 0))
        {
            // A cluster is compressed whole, so one that is only partly zero is read in full; with -S 0 even
            // a zero cluster is stored (compressed, it costs a few bytes).
            len = toPieceEnd;
            return PieceKind.Data;
        }

        if (_s.MinSparse == 0 || (len < _s.MinSparse && _compressTarget == null))
            return PieceKind.FillZero;
        return _s.TargetIsZero ? PieceKind.Skip : PieceKind.Zero;
    }

    private bool IsWholeCluster(Piece p) =>
        p.Offset % _chunk == 0 && (p.Length == _chunk || p.Offset + p.Length == _size);

    private bool IsZeroSkippable(ReadOnlySpan<byte> data) =>
        _s.MinSparse > 0 && !data.ContainsAnyExcept((byte)0);

    private async ValueTask WritePieceAsync(Piece p, ReadOnlyMemory<byte> data, ReadOnlyMemory<byte> packed)
    {
        switch (p.Kind)
        {
            case PieceKind.Zero:
                await _target.WriteZeroesAsync(p.Offset, p.Length, RequestFlags.MayUnmap).ConfigureAwait(false);
                return;
            case PieceKind.FillZero:
                await _target.WriteAsync(p.Offset, data).ConfigureAwait(false);
                return;
        }

        if (_compressTarget != null && IsWholeCluster(p))
        {
            if (IsZeroSkippable(data.Span))
            {
                if (!_s.TargetIsZero)
                    await _target.WriteZeroesAsync(p.Offset, p.Length, RequestFlags.MayUnmap).ConfigureAwait(false);
                return;
            }

            await _compressTarget.WriteCompressedAsync(p.Offset, data, packed).ConfigureAwait(false);
            return;
        }

        if (_s.MinSparse == 0)
        {
            await _target.WriteAsync(p.Offset, data).ConfigureAwait(false);
            return;
        }

        await WriteSparseAsync(p.Offset, data).ConfigureAwait(false);
    }

    /// <summary>
    /// Writes data runs and leaves out (or zeroes) runs of whole zero clusters at least -S long, found in the
    /// buffer just read: one pass, no copy.
    /// </summary>
    private async ValueTask WriteSparseAsync(long offset, ReadOnlyMemory<byte> data)
    {
        int len = data.Length;
        int pos = 0;
        while (pos < len)
        {
            int start = pos;
            int zeroEnd = -1;
            while (pos < len)
            {
                int blockEnd = BlockEnd(offset, pos, len);
                if (data.Span[pos..blockEnd].ContainsAnyExcept((byte)0))
                {
                    pos = blockEnd;
                    continue;
                }

                int z = blockEnd;
                while (z < len)
                {
                    int e = BlockEnd(offset, z, len);
                    if (data.Span[z..e].ContainsAnyExcept((byte)0))
                        break;
                    z = e;
                }

                if (z - pos >= _s.MinSparse)
                {
                    zeroEnd = z;
                    break;
                }

                pos = z;
            }

            if (pos > start)
                await _target.WriteAsync(offset + start, data[start..pos]).ConfigureAwait(false);
            if (zeroEnd > pos)
            {
                if (!_s.TargetIsZero)
                    await _target.WriteZeroesAsync(offset + pos, zeroEnd - pos, RequestFlags.MayUnmap).ConfigureAwait(false);
                pos = zeroEnd;
            }
        }
    }

    private int BlockEnd(long offset, int pos, int len)
    {
        long abs = offset + pos;
        long next = (abs / _zeroGranularity * _zeroGranularity) + _zeroGranularity;
        return (int)Math.Min(len, next - offset);
    }

    private void Account(long bytes)
    {
        long done = Interlocked.Add(ref _done, bytes);
        _s.Progress?.Report(done, _size);
    }
}
