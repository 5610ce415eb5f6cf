using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace SharpBlock.Drivers.Protocol.Curl;

/// <summary>
/// One request to a server: either a probe (headers only: size, and for HTTP whether ranges are honoured) or
/// the bytes [Offset, Offset + Destination.Length). libcurl calls back into it on the engine thread while the
/// transfer runs; the awaiting side sees only <see cref="Completion"/>, completed off that thread.
/// </summary>
internal sealed unsafe class CurlTransfer
{
    private readonly TaskCompletionSource<CurlOutcome> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private GCHandle _self;

    // Where byte 0 of the response body lies in the file: the requested offset for a range answer, 0 for an
    // answer with the whole file (a TFTP transfer, an HTTP 200).
    private long _bodyStart;
    private long _received;
    private int _filled;
    private bool _acceptRanges;

    private CurlTransfer(CurlTarget target, long offset, Memory<byte> destination, bool probe)
    {
        Target = target;
        Offset = offset;
        Destination = destination;
        IsProbe = probe;
        _bodyStart = target.Scheme.HasRanges ? offset : 0;
    }

    public CurlTarget Target { get; }
    public long Offset { get; }
    public Memory<byte> Destination { get; }
    public bool IsProbe { get; }

    public Task<CurlOutcome> Completion => _done.Task;

    /// <summary>A headers-only request that learns the file's size.</summary>
    public static CurlTransfer Probe(CurlTarget target) => new(target, 0, Memory<byte>.Empty, probe: true);

    /// <summary>A request for the bytes at <paramref name="offset"/> that fill <paramref name="destination"/>.</summary>
    public static CurlTransfer Range(CurlTarget target, long offset, Memory<byte> destination) => new(target, offset, destination, probe: false);

    /// <summary>Describes the transfer on a fresh (or reset) easy handle. Runs on the engine thread.</summary>
    public void Configure(nint easy, byte* errorBuffer)
    {
        _self = GCHandle.Alloc(this);
        nint self = GCHandle.ToIntPtr(_self);
        var t = Target;
        Check(LibCurl.SetOptString(easy, LibCurl.OptUrl, t.Url));
        // Only the driver's own scheme: a redirect or a crafted URL cannot make an https node speak plain text.
        Check(LibCurl.SetOptString(easy, LibCurl.OptProtocolsStr, t.Scheme.Name));
        Check(LibCurl.SetOptLong(easy, LibCurl.OptNoSignal, 1));
        Check(LibCurl.SetOptLong(easy, LibCurl.OptFailOnError, 1));
        Check(LibCurl.SetOptLong(easy, LibCurl.OptTimeout, t.TimeoutSeconds));
        Check(LibCurl.SetOptLong(easy, LibCurl.OptConnectTimeout, t.TimeoutSeconds));
        Check(LibCurl.SetOptPtr(easy, LibCurl.OptErrorBuffer, (nint)errorBuffer));
        Check(LibCurl.SetOptPtr(easy, LibCurl.OptPrivate, self));
        Check(LibCurl.SetOptPtr(easy, LibCurl.OptWriteFunction, (nint)(delegate* unmanaged<byte*, nuint, nuint, nint, nuint>)&OnBody));
        Check(LibCurl.SetOptPtr(easy, LibCurl.OptWriteData, self));
        Check(LibCurl.SetOptPtr(easy, LibCurl.OptHeaderFunction, (nint)(delegate* unmanaged<byte*, nuint, nuint, nint, nuint>)&OnHeader));
        Check(LibCurl.SetOptPtr(easy, LibCurl.OptHeaderData, self));
        if (t.Scheme.UsesTls)
        {
            Check(LibCurl.SetOptLong(easy, LibCurl.OptSslVerifyPeer, t.SslVerify ? 1 : 0));
            Check(LibCurl.SetOptLong(easy, LibCurl.OptSslVerifyHost, t.SslVerify ? 2 : 0));
        }

        if (t.Scheme == CurlScheme.Tftp)
            Check(LibCurl.SetOptLong(easy, LibCurl.OptTftpBlockSize, CurlLimits.TftpBlockSize));
        if (t.Cookie != null)
            Check(LibCurl.SetOptString(easy, LibCurl.OptCookie, t.Cookie));
        if (t.UserName != null)
            Check(LibCurl.SetOptString(easy, LibCurl.OptUserName, t.UserName));
        if (t.Password != null)
            Check(LibCurl.SetOptString(easy, LibCurl.OptPassword, t.Password));
        if (t.ProxyUserName != null)
            Check(LibCurl.SetOptString(easy, LibCurl.OptProxyUserName, t.ProxyUserName));
        if (t.ProxyPassword != null)
            Check(LibCurl.SetOptString(easy, LibCurl.OptProxyPassword, t.ProxyPassword));
        if (IsProbe)
        {
            Check(LibCurl.SetOptLong(easy, LibCurl.OptNoBody, 1));
        }
        else if (t.Scheme.HasRanges)
        {
            long last = Offset + Destination.Length - 1;
            Check(LibCurl.SetOptString(easy, LibCurl.OptRange,
                string.Create(CultureInfo.InvariantCulture, $"{Offset}-{last}")));
        }
    }

    /// <summary>Reports the end of the transfer (libcurl's result code) to the waiting side.</summary>
    public void Finish(nint easy, int code, byte* errorBuffer)
    {
        _self.Free();
        // The body callback stops a transfer once the destination is full (a TFTP read that need not go on
        // to the end of the file): libcurl calls that a write error, but every byte asked for is here.
        if (code == LibCurl.WriteError && !IsProbe && _filled == Destination.Length)
            code = 0;
        if (code != 0)
        {
            string text = Marshal.PtrToStringUTF8((nint)errorBuffer) is { Length: > 0 } s ? s : LibCurl.StrError(code);
            _done.SetResult(CurlOutcome.Failed(text));
            return;
        }

        if (IsProbe)
        {
            long length = -1;
            LibCurl.GetInfoLong(easy, LibCurl.InfoContentLengthDownload, &length);
            _done.SetResult(CurlOutcome.Probed(length, _acceptRanges));
            return;
        }

        _done.SetResult(_filled == Destination.Length
            ? CurlOutcome.Read(_filled)
            : CurlOutcome.Failed($"Server sent {_filled} of the {Destination.Length} bytes asked for at offset {Offset}"));
    }

    /// <summary>A transfer the engine could not even start (bad option, engine gone).</summary>
    public void Abandon(string reason)
    {
        if (_self.IsAllocated)
            _self.Free();
        _done.TrySetResult(CurlOutcome.Failed(reason));
    }

    private static void Check(int code)
    {
        if (code != 0)
            throw new CurlSetupException(LibCurl.StrError(code));
    }

    [UnmanagedCallersOnly]
    private static nuint OnBody(byte* data, nuint size, nuint count, nint self)
    {
        try
        {
            var t = (CurlTransfer)GCHandle.FromIntPtr(self).Target!;
            nuint total = size * count;
            return t.Accept(new ReadOnlySpan<byte>(data, checked((int)total))) ? total : 0;
        }
        catch (Exception)
        {
            // Nothing may unwind into libcurl; returning a short count aborts the transfer instead.
            return 0;
        }
    }

    /// <summary>Copies what of a body piece falls inside the wanted range; false stops the transfer.</summary>
    private bool Accept(ReadOnlySpan<byte> piece)
    {
        // libcurl hands a headers-only FTP request's size and date lines to the body callback too.
        if (IsProbe)
            return true;
        long pieceStart = _bodyStart + _received;
        _received += piece.Length;
        long wantedFrom = Offset + _filled;
        long skip = wantedFrom - pieceStart;
        if (skip < piece.Length && skip >= 0)
        {
            var useful = piece[(int)skip..];
            int n = Math.Min(useful.Length, Destination.Length - _filled);
            useful[..n].CopyTo(Destination.Span[_filled..]);
            _filled += n;
        }
        else if (skip < 0)
        {
            // Bytes before the ones already copied: the server is not sending what was asked.
            return false;
        }

        return _filled < Destination.Length;
    }

    [UnmanagedCallersOnly]
    private static nuint OnHeader(byte* data, nuint size, nuint count, nint self)
    {
        try
        {
            var t = (CurlTransfer)GCHandle.FromIntPtr(self).Target!;
            nuint total = size * count;
            t.Header(new ReadOnlySpan<byte>(data, checked((int)total)));
            return total;
        }
        catch (Exception)
        {
            return 0;
        }
    }

    private void Header(ReadOnlySpan<byte> line)
    {
        if (!Target.Scheme.IsHttp)
            return;
        line = line.TrimEnd("\r\n"u8);
        if (line.StartsWith("HTTP/"u8))
        {
            // A new status line starts a new response (after a redirect or a 100): forget the last one's headers.
            _acceptRanges = false;
            int sp = line.IndexOf((byte)' ');
            var status = sp > 0 ? line[(sp + 1)..] : default;
            // A server that ignores the Range header answers 200 with the file from byte 0.
            _bodyStart = status.StartsWith("206"u8) ? Offset : 0;
            return;
        }

        int colon = line.IndexOf((byte)':');
        if (colon < 0)
            return;
        if (Ascii.EqualsIgnoreCase(line[..colon].Trim((byte)' '), "accept-ranges"u8)
            && line[(colon + 1)..].IndexOf("bytes"u8) >= 0)
            _acceptRanges = true;
    }
}
