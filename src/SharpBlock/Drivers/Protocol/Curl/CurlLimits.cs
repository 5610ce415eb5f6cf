namespace SharpBlock.Drivers.Protocol.Curl;

/// <summary>The curl drivers' defaults and bounds, QEMU's where QEMU has one.</summary>
internal static class CurlLimits
{
    /// <summary>QEMU's default readahead: a small read fetches this much so the next ones need no round trip.</summary>
    public const int DefaultReadahead = 256 * 1024;

    /// <summary>
    /// The largest readahead accepted. Each cached window is one buffer of this size, and there are
    /// <see cref="CachedWindows"/> of them per node, so the bound caps a node's memory.
    /// </summary>
    public const int MaxReadahead = 64 * 1024 * 1024;

    /// <summary>Windows of readahead kept per node (QEMU keeps eight transfer states, each with its buffer).</summary>
    public const int CachedWindows = 8;

    /// <summary>QEMU's default: a request not done after this many seconds fails.</summary>
    public const int DefaultTimeoutSeconds = 5;

    /// <summary>QEMU refuses timeouts above this (CURL_TIMEOUT_MAX): ten thousand seconds.</summary>
    public const int MaxTimeoutSeconds = 10000;

    /// <summary>
    /// The TFTP block size asked for (RFC 2348): far fewer round trips than the protocol's 512 bytes; a server
    /// that does not take the option falls back to 512.
    /// </summary>
    public const int TftpBlockSize = 16384;
}
