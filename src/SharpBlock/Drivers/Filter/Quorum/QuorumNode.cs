using System.Buffers;
using System.Buffers.Binary;
using System.Security.Cryptography;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Io;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Filter.Quorum;

/// <summary>
/// The quorum filter: every write goes to all children and succeeds when at least vote-threshold of them
/// succeed; every read goes to all children, and the data at least vote-threshold of them agree on (by
/// content hash) is returned. A child that fails or loses the vote is named in QUORUM_REPORT_BAD; a request
/// without a quorum raises QUORUM_FAILURE and fails with EIO. In blkverify mode (two children, both must
/// answer) any difference fails the read with the first differing sector, where QEMU would exit.
/// </summary>
public sealed class QuorumNode : BlockNode
{
    private const int HashSize = SHA256.HashSizeInBytes;

    // Votes of up to this many children live on the stack; the schema sets no limit on the count.
    private const int SmallVote = 32;

    private readonly BlockNode[] _children;
    private readonly int _threshold;
    private readonly bool _blkverify;
    private readonly long _length;

    private QuorumNode(BlockNode[] children, int threshold, bool blkverify, long length, NodeSettings settings)
        : base(settings)
    {
        _children = children;
        _threshold = threshold;
        _blkverify = blkverify;
        _length = length;
        for (int i = 0; i < children.Length; i++)
            AttachChild(children[i], ChildRole.Children, "children." + i.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    public override string DriverName => "quorum";

    public override long Length => _length;

    public override int RequestAlignment
    {
        get
        {
            int a = 1;
            foreach (var c in _children)
                a = Math.Max(a, c.RequestAlignment);
            return a;
        }
    }

    public int VoteThreshold => _threshold;

    public bool BlkverifyMode => _blkverify;

    internal static async ValueTask<BlockNode> OpenAsync(BlockOpenContext ctx, CancellationToken cancellationToken)
    {
        var o = ctx.Options.Quorum ?? throw new BlockException(Errno.EINVAL, "Missing quorum options");
        // The checks and their wording are QEMU 2.1's, in its order: child count, threshold, blkverify.
        int count = o.Children?.Count ?? 0;
        if (count < 2)
            throw new BlockException(Errno.EINVAL, "Number of provided children must be greater than 1");
        if (o.VoteThreshold < 1)
            throw new BlockException(Errno.ERANGE, "Parameter 'vote-threshold' expects value >= 1");
        if (o.VoteThreshold > count)
            throw new BlockException(Errno.ERANGE, "threshold may not exceed children count");
        bool blkverify = o.Blkverify ?? false;
        if (blkverify && (count != 2 || o.VoteThreshold != 2))
            throw new BlockException(Errno.EINVAL, "blkverify mode is set by setting blkverify=on and using two files with vote_threshold=2");

        var children = new BlockNode[count];
        for (int i = 0; i < count; i++)
            children[i] = await ctx.OpenChildAsync(o.Children![i], cancellationToken).ConfigureAwait(false);

        // QEMU cannot size a quorum whose children differ in size, and so refuses to open it.
        long length = children[0].Length;
        for (int i = 1; i < count; i++)
        {
            if (children[i].Length != length)
                throw new BlockException(Errno.EIO, "Could not refresh total sector count: Input/output error");
        }

        return new QuorumNode(children, (int)o.VoteThreshold, blkverify, length, ctx.Settings);
    }

    protected override async ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        int n = _children.Length;
        int len = buffer.Length;
        byte[] copies = ArrayPool<byte>.Shared.Rent(checked(n * len));
        var errors = new BlockException?[n];
        try
        {
            var reads = new ValueTask[n];
            for (int i = 0; i < n; i++)
                reads[i] = _children[i].ReadAsync(offset, copies.AsMemory(i * len, len), cancellationToken);
            int ok = await CollectAsync(reads, errors, offset, len).ConfigureAwait(false);
            if (ok < _threshold)
                throw NoQuorum(errors, offset, len);

            int chosen = Vote(copies.AsSpan(0, n * len), len, errors, offset);
            copies.AsMemory(chosen * len, len).CopyTo(buffer);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(copies);
        }
    }

    /// <summary>Picks the child whose data is returned; raises the events for children that lost the vote.</summary>
    private int Vote(ReadOnlySpan<byte> copies, int len, BlockException?[] errors, long offset)
    {
        int n = _children.Length;
        int first = Array.FindIndex(errors, e => e == null);
        var reference = copies.Slice(first * len, len);
        bool agree = true;
        for (int j = first + 1; j < n && agree; j++)
        {
            if (errors[j] != null)
                continue;
            var other = copies.Slice(j * len, len);
            if (_blkverify)
            {
                int diff = reference.CommonPrefixLength(other);
                if (diff < len)
                {
                    throw new BlockException(Errno.EIO,
                        $"quorum: sector_num={offset >> 9} nb_sectors={SectorCount(offset, len)} contents mismatch in sector {(offset + diff) >> 9}");
                }
            }
            else
            {
                agree = reference.SequenceEqual(other);
            }
        }

        if (agree)
            return first;

        // Children disagree: hash every successful read and let the versions vote.
        Span<byte> hashes = n <= SmallVote ? stackalloc byte[n * HashSize] : new byte[n * HashSize];
        Span<bool> voting = n <= SmallVote ? stackalloc bool[n] : new bool[n];
        Span<int> version = n <= SmallVote ? stackalloc int[n] : new int[n];
        for (int i = 0; i < n; i++)
        {
            voting[i] = errors[i] == null;
            if (voting[i])
                SHA256.HashData(copies.Slice(i * len, len), hashes.Slice(i * HashSize, HashSize));
        }

        int winner = QuorumVote.Winner(hashes, HashSize, voting, version, out int votes);
        if (votes < _threshold)
        {
            RaiseFailure(offset, len);
            throw new BlockException(Errno.EIO, $"Quorum '{NodeName}': no {_threshold} children agree on sectors {offset >> 9}+{SectorCount(offset, len)}");
        }

        for (int i = 0; i < n; i++)
        {
            if (voting[i] && version[i] != winner)
                RaiseBad(i, null, offset, len);
        }

        return winner;
    }

    protected override async ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags, CancellationToken cancellationToken)
    {
        var writes = new ValueTask[_children.Length];
        for (int i = 0; i < writes.Length; i++)
            writes[i] = _children[i].WriteAsync(offset, data, flags, cancellationToken);
        await FinishWriteAsync(writes, offset, data.Length).ConfigureAwait(false);
    }

    protected override async ValueTask WriteZeroesCoreAsync(long offset, long length, RequestFlags flags, CancellationToken cancellationToken)
    {
        // A child that cannot zero quickly must still write the zeros: every replica has to hold them.
        flags &= ~RequestFlags.NoFallback;
        var writes = new ValueTask[_children.Length];
        for (int i = 0; i < writes.Length; i++)
            writes[i] = _children[i].WriteZeroesAsync(offset, length, flags, cancellationToken);
        await FinishWriteAsync(writes, offset, length).ConfigureAwait(false);
    }

    private async ValueTask FinishWriteAsync(ValueTask[] writes, long offset, long length)
    {
        var errors = new BlockException?[writes.Length];
        int ok = await CollectAsync(writes, errors, offset, length).ConfigureAwait(false);
        if (ok < _threshold)
            throw NoQuorum(errors, offset, length);
    }

    protected override async ValueTask FlushCoreAsync(CancellationToken cancellationToken)
    {
        var flushes = new ValueTask[_children.Length];
        for (int i = 0; i < flushes.Length; i++)
            flushes[i] = _children[i].FlushAsync(cancellationToken);
        var errors = new BlockException?[flushes.Length];
        // A flush names no sectors; its reports carry zeros there, as QEMU's do.
        int ok = await CollectAsync(flushes, errors, 0, 0).ConfigureAwait(false);
        if (ok < _threshold)
            throw new BlockException(VotedErrno(errors), $"Quorum '{NodeName}': only {ok} of {_children.Length} children flushed");
    }

    /// <summary>Awaits every child's request; a child's failure is recorded and reported, never thrown. Returns the successes.</summary>
    private async ValueTask<int> CollectAsync(ValueTask[] requests, BlockException?[] errors, long offset, long length)
    {
        int ok = 0;
        for (int i = 0; i < requests.Length; i++)
        {
            try
            {
                await requests[i].ConfigureAwait(false);
                ok++;
            }
            catch (BlockException ex)
            {
                errors[i] = ex;
                RaiseBad(i, BlockException.Describe(ex.Errno), offset, length);
            }
        }

        return ok;
    }

    private BlockException NoQuorum(BlockException?[] errors, long offset, long length)
    {
        RaiseFailure(offset, length);
        var errno = VotedErrno(errors);
        return new BlockException(errno, $"Quorum '{NodeName}': fewer than {_threshold} children succeeded on sectors {offset >> 9}+{SectorCount(offset, length)}: {BlockException.Describe(errno)}");
    }

    /// <summary>The error most failing children agree on, which is what QEMU returns for a request without quorum.</summary>
    private static Errno VotedErrno(BlockException?[] errors)
    {
        int n = errors.Length;
        Span<byte> keys = n <= SmallVote ? stackalloc byte[n * 4] : new byte[n * 4];
        Span<bool> voting = n <= SmallVote ? stackalloc bool[n] : new bool[n];
        Span<int> version = n <= SmallVote ? stackalloc int[n] : new int[n];
        for (int i = 0; i < n; i++)
        {
            voting[i] = errors[i] != null;
            BinaryPrimitives.WriteInt32LittleEndian(keys.Slice(i * 4, 4), voting[i] ? (int)errors[i]!.Errno : 0);
        }

        int winner = QuorumVote.Winner(keys, 4, voting, version, out _);
        return winner < 0 ? Errno.EIO : errors[winner]!.Errno;
    }

    private static long SectorCount(long offset, long length) => ((offset + length + 511) >> 9) - (offset >> 9);

    private void RaiseBad(int child, string? error, long offset, long length) =>
        RaiseEvent(new QuorumReportBadEvent
        {
            NodeName = _children[child].NodeName,
            Error = error,
            SectorNum = offset >> 9,
            SectorsCount = SectorCount(offset, length),
        });

    private void RaiseFailure(long offset, long length) =>
        RaiseEvent(new QuorumFailureEvent
        {
            Reference = DeviceAbove() ?? NodeName,
            SectorNum = offset >> 9,
            SectorsCount = SectorCount(offset, length),
        });
}
