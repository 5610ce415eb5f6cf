using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Io;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Protocol.Curl;

/// <summary>
/// The http, https, ftp, ftps and tftp protocol drivers: a read-only node whose bytes are a file on a server,
/// fetched by libcurl range by range. The size comes from one headers-only request at open; HTTP servers that
/// do not announce byte ranges are refused then, as QEMU refuses them, because every read would otherwise
/// download the image from its start.
/// </summary>
public sealed class CurlNode : BlockNode
{
    private const int SectorSize = 512;

    private readonly CurlTarget _target;
    private readonly CurlReadahead _readahead;
    private readonly long _fileLength;

    private CurlNode(CurlTarget target, long fileLength, int readahead, NodeSettings settings)
        : base(settings)
    {
        _target = target;
        _fileLength = fileLength;
        _readahead = new CurlReadahead(FetchAsync, readahead, fileLength);
    }

    public override string DriverName => _target.Scheme.Name;

    public override string Filename => _target.Url;

    /// <summary>
    /// The file's size rounded up to whole 512-byte sectors, as QEMU sizes every node; the bytes past the
    /// file's end read as zeros.
    /// </summary>
    public override long Length => (_fileLength + SectorSize - 1) / SectorSize * SectorSize;

    public override bool HasDriverInfo => false;

    internal static async ValueTask<BlockNode> OpenAsync(BlockOpenContext context, CurlScheme scheme, BlockdevOptionsCurl? o)
    {
        if (o == null)
            throw new BlockException(Errno.EINVAL, $"Missing {scheme.Name} options");
        string url = o.Url ?? o.Filename ?? throw new BlockException(Errno.EINVAL, "curl block driver requires an 'url' option");
        if (CurlScheme.OfUrl(url) != scheme)
            throw new BlockException(Errno.EINVAL, $"'{url}' is not a {scheme.Name}:// URL, as driver '{scheme.Name}' needs");
        if (!context.Settings.ReadOnly)
            throw new BlockException(Errno.EROFS, "curl block device does not support writes");
        long readahead = o.Readahead ?? CurlLimits.DefaultReadahead;
        if (readahead % 512 != 0 || readahead <= 0 || readahead > CurlLimits.MaxReadahead)
            throw new BlockException(Errno.EINVAL, $"HTTP_READAHEAD_SIZE {readahead} is not a multiple of 512 between 512 and {CurlLimits.MaxReadahead}");
        long timeout = o.Timeout ?? CurlLimits.DefaultTimeoutSeconds;
        if (timeout is < 0 or > CurlLimits.MaxTimeoutSeconds)
            throw new BlockException(Errno.EINVAL, "timeout parameter is too large or negative");
        var secrets = context.Graph.Secrets;
        var target = new CurlTarget
        {
            Scheme = scheme,
            Url = url,
            TimeoutSeconds = (int)timeout,
            SslVerify = o.Sslverify ?? true,
            Cookie = o.Cookie,
            UserName = o.Username,
            Password = o.PasswordSecret is { } p ? secrets.Get(p) : null,
            ProxyUserName = o.ProxyUsername,
            ProxyPassword = o.ProxyPasswordSecret is { } pp ? secrets.Get(pp) : null,
        };
        var probe = await CurlEngine.Shared.RunAsync(CurlTransfer.Probe(target)).ConfigureAwait(false);
        if (probe.Error != null)
            throw OpenError(probe.Error);
        if (probe.Length < 0)
            throw OpenError("Server didn't report file size.");
        if (scheme.IsHttp && !probe.AcceptRanges)
            throw OpenError("Server does not support 'range' (byte ranges).");
        return new CurlNode(target, probe.Length, (int)readahead, context.Settings);
    }

    private static BlockException OpenError(string reason) => new(Errno.EIO, "CURL: Error opening file: " + reason);

    private async Task FetchAsync(long offset, Memory<byte> destination)
    {
        var outcome = await CurlEngine.Shared.RunAsync(CurlTransfer.Range(_target, offset, destination)).ConfigureAwait(false);
        if (outcome.Error != null)
            throw new BlockException(Errno.EIO, $"CURL: reading {destination.Length} bytes at offset {offset} of {_target.Url} failed: {outcome.Error}");
    }

    protected override ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        // The tail of the last sector is not on the server: it is zeros, and the server is asked only for the rest.
        long inFile = Math.Clamp(_fileLength - offset, 0, buffer.Length);
        if (inFile < buffer.Length)
            buffer.Span[(int)inFile..].Clear();
        return inFile == 0 ? ValueTask.CompletedTask : _readahead.ReadAsync(offset, buffer[..(int)inFile]);
    }

    protected override ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags, CancellationToken cancellationToken) =>
        throw new BlockException(Errno.EROFS, "curl block device does not support writes");

    protected override ValueTask FlushCoreAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public override ValueTask<long> GetAllocatedFileSizeAsync(CancellationToken cancellationToken = default) => ValueTask.FromResult(-1L);

    protected override ValueTask CloseCoreAsync()
    {
        _readahead.Clear();
        return ValueTask.CompletedTask;
    }
}
