using System.Buffers;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Io;

namespace SharpBlock.Drivers.Filter.Blkverify;

/// <summary>
/// The blkverify filter: every request goes to both the image under test and a raw reference; a read whose
/// two answers differ, or a request that one side fails and the other does not, fails with EIO and a message
/// in QEMU's words (the request's sectors and the first differing sector). QEMU prints that line and exits;
/// a daemon must keep serving, so here only the request fails and the line is its error.
/// </summary>
public sealed class BlkverifyNode : BlockNode
{
    private readonly BlockNode _test;
    private readonly BlockNode _raw;

    private BlkverifyNode(BlockNode test, BlockNode raw, NodeSettings settings)
        : base(settings)
    {
        _test = test;
        _raw = raw;
        AttachChild(raw, ChildRole.Raw, "raw");
        AttachChild(test, ChildRole.Test, "test");
    }

    public override string DriverName => "blkverify";

    // The reference decides the size, as in QEMU; a shorter test image fails the reads past its end.
    public override long Length => _raw.Length;

    public override string Filename => $"blkverify:{_raw.Filename}:{_test.Filename}";

    public override int RequestAlignment => Math.Max(_test.RequestAlignment, _raw.RequestAlignment);

    internal static async ValueTask<BlockNode> OpenAsync(BlockOpenContext ctx, CancellationToken cancellationToken)
    {
        var o = ctx.Options.Blkverify ?? throw new BlockException(Errno.EINVAL, "Missing blkverify options");
        var raw = await ctx.OpenChildAsync(o.Raw, cancellationToken).ConfigureAwait(false);
        var test = await ctx.OpenChildAsync(o.Test, cancellationToken).ConfigureAwait(false);
        return new BlkverifyNode(test, raw, ctx.Settings);
    }

    protected override async ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        byte[] reference = ArrayPool<byte>.Shared.Rent(buffer.Length);
        try
        {
            var test = _test.ReadAsync(offset, buffer, cancellationToken);
            var raw = _raw.ReadAsync(offset, reference.AsMemory(0, buffer.Length), cancellationToken);
            await BothAsync(test, raw, "read", offset, buffer.Length).ConfigureAwait(false);
            int same = buffer.Span.CommonPrefixLength(reference.AsSpan(0, buffer.Length));
            if (same < buffer.Length)
                throw Mismatch("read", offset, buffer.Length, $"contents mismatch in sector {(offset + same) >> 9}");
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(reference);
        }
    }

    protected override ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags, CancellationToken cancellationToken) =>
        BothAsync(_test.WriteAsync(offset, data, flags, cancellationToken), _raw.WriteAsync(offset, data, flags, cancellationToken), "write", offset, data.Length);

    // Both sides must end up holding zeros, so neither may refuse for want of a fast way.
    protected override ValueTask WriteZeroesCoreAsync(long offset, long length, RequestFlags flags, CancellationToken cancellationToken) =>
        BothAsync(
            _test.WriteZeroesAsync(offset, length, flags & ~RequestFlags.NoFallback, cancellationToken),
            _raw.WriteZeroesAsync(offset, length, flags & ~RequestFlags.NoFallback, cancellationToken),
            "write", offset, length);

    // Only the image under test is flushed, as in QEMU: the reference's durability is not what is tested.
    protected override ValueTask FlushCoreAsync(CancellationToken cancellationToken) => _test.FlushAsync(cancellationToken);

    protected override ValueTask<BlockStatus> BlockStatusCoreAsync(long offset, long length, CancellationToken cancellationToken) =>
        _test.GetBlockStatusAsync(offset, length, cancellationToken);

    /// <summary>Waits for both sides; the same failure on both is the request's failure, different outcomes are a mismatch.</summary>
    private async ValueTask BothAsync(ValueTask test, ValueTask raw, string op, long offset, long length)
    {
        var testError = await CaptureAsync(test).ConfigureAwait(false);
        var rawError = await CaptureAsync(raw).ConfigureAwait(false);
        int testRet = testError == null ? 0 : -(int)testError.Errno;
        int rawRet = rawError == null ? 0 : -(int)rawError.Errno;
        if (testRet != rawRet)
            throw Mismatch(op, offset, length, $"return value mismatch {testRet} != {rawRet}");
        if (testError != null)
            throw testError;
    }

    private static async ValueTask<BlockException?> CaptureAsync(ValueTask request)
    {
        try
        {
            await request.ConfigureAwait(false);
            return null;
        }
        catch (BlockException ex)
        {
            return ex;
        }
    }

    private static BlockException Mismatch(string op, long offset, long length, string what) =>
        new(Errno.EIO, $"blkverify: {op} sector_num={offset >> 9} nb_sectors={((offset + length + 511) >> 9) - (offset >> 9)} {what}");
}
