namespace SharpBlock.Drivers.Protocol.Curl;

/// <summary>
/// Where a curl node's bytes are and how to ask for them: everything every transfer of the node sets on its
/// handle. Immutable, so transfers of one node share it across threads.
/// </summary>
internal sealed record CurlTarget
{
    public required CurlScheme Scheme { get; init; }
    public required string Url { get; init; }

    /// <summary>Seconds a transfer may take in total; QEMU's default is 5.</summary>
    public int TimeoutSeconds { get; init; } = CurlLimits.DefaultTimeoutSeconds;

    public bool SslVerify { get; init; } = true;
    public string? Cookie { get; init; }
    public string? UserName { get; init; }
    public string? Password { get; init; }
    public string? ProxyUserName { get; init; }
    public string? ProxyPassword { get; init; }
}
