namespace SharpBlock.Drivers.Protocol.Curl;

/// <summary>How a transfer ended.</summary>
internal readonly record struct CurlOutcome(string? Error, long Length, bool AcceptRanges)
{
    public static CurlOutcome Failed(string error) => new(error, 0, false);
    public static CurlOutcome Probed(long length, bool acceptRanges) => new(null, length, acceptRanges);
    public static CurlOutcome Read(int length) => new(null, length, false);
}
