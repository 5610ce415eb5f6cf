using SharpBlock.Schema;

namespace SharpBlock.Drivers.Protocol.Curl;

/// <summary>
/// What differs between the five curl drivers: the URL scheme each accepts, and how each gets a byte range.
/// HTTP asks with a Range header and must say it honours one; FTP resumes with REST; TFTP has no way to start
/// anywhere but at byte 0, so its ranges are read from the start and the bytes before them dropped.
/// </summary>
internal sealed class CurlScheme
{
    private CurlScheme(BlockdevDriver driver, string name, bool isHttp, bool usesTls, bool hasRanges)
    {
        Driver = driver;
        Name = name;
        IsHttp = isHttp;
        UsesTls = usesTls;
        HasRanges = hasRanges;
    }

    public static CurlScheme Http { get; } = new(BlockdevDriver.Http, "http", isHttp: true, usesTls: false, hasRanges: true);
    public static CurlScheme Https { get; } = new(BlockdevDriver.Https, "https", isHttp: true, usesTls: true, hasRanges: true);
    public static CurlScheme Ftp { get; } = new(BlockdevDriver.Ftp, "ftp", isHttp: false, usesTls: false, hasRanges: true);
    public static CurlScheme Ftps { get; } = new(BlockdevDriver.Ftps, "ftps", isHttp: false, usesTls: true, hasRanges: true);
    public static CurlScheme Tftp { get; } = new(BlockdevDriver.Tftp, "tftp", isHttp: false, usesTls: false, hasRanges: false);

    public static IReadOnlyList<CurlScheme> All { get; } = [Http, Https, Ftp, Ftps, Tftp];

    public BlockdevDriver Driver { get; }

    /// <summary>The URL scheme and driver name ("https").</summary>
    public string Name { get; }

    /// <summary>Whether the server must announce "Accept-Ranges: bytes" and may answer a range with the whole file.</summary>
    public bool IsHttp { get; }

    /// <summary>Whether sslverify means anything for this scheme.</summary>
    public bool UsesTls { get; }

    /// <summary>False for TFTP: every transfer starts at byte 0.</summary>
    public bool HasRanges { get; }

    /// <summary>The scheme whose URLs start "NAME://", or null.</summary>
    public static CurlScheme? OfUrl(string url)
    {
        foreach (var s in All)
        {
            if (url.Length > s.Name.Length + 3 && url.StartsWith(s.Name, StringComparison.OrdinalIgnoreCase)
                && url.AsSpan(s.Name.Length).StartsWith("://", StringComparison.Ordinal))
                return s;
        }

        return null;
    }

    public static CurlScheme Of(BlockdevDriver driver)
    {
        foreach (var s in All)
        {
            if (s.Driver == driver)
                return s;
        }

        throw new ArgumentOutOfRangeException(nameof(driver), driver, "not a curl driver");
    }
}
